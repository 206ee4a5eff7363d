// `strata admin transaction -- CMD ARGS...`: as transactional-update does,
// run a command in a writable copy of the pending deployment's tree, in a
// private mount namespace (unshare -m), chrooted, with /dev, /proc, /run
// and /tmp mounted for it; on success commit the result and deploy it.
//
// The copy is the commit checked out by copy in the plain layout (as a
// compose base, decision 0009): /etc is the image's default config (from
// /usr/etc), not the running /etc, and what the command writes there
// becomes the new default, which the deploy merges three ways with the
// admin's /etc. /var is the image's own (the factory files, e.g. the dpkg
// database): changes there become image defaults (tmpfiles.d, created at
// boot where missing), never the running /var, and are reported as a
// warning; /var/cache, /var/log and /var/tmp are emptied first. A command
// that exits non-zero leaves no deployment, commit or directory behind.

import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { StrataError } from '../errors.js';
import type { Checksum } from '../core/objects.js';
import { checkout } from '../repo/checkout.js';
import { unassemble } from '../compose/assemble.js';
import { StagingTree } from '../compose/tree.js';
import { deployDerived, layerBase, layeringOf, makeWorkDir, startingPoint } from './derive.js';
import type { DeployResult } from './deploy.js';
import { Sysroot } from './sysroot.js';

export interface TransactionOptions {
  sysroot: string;
  booted?: string;
  command: string[];
  /** Stage the result instead of making it the default now. */
  stage?: boolean;
  /** The command's stdio (default: inherited). */
  stdio?: 'inherit' | 'pipe';
}

export interface TransactionResult {
  command: string[];
  exitCode: number;
  base: Checksum;
  commit: Checksum;
  deployment: DeployResult['deployment'];
  staged: boolean;
  /** Paths under /var the command changed: image defaults only (see above). */
  varChanges: string[];
  warnings: string[];
  stdout?: string;
  stderr?: string;
}

const CHROOT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Mount points the command gets, and what is mounted there. */
const MOUNTS: [string, string][] = [
  ['dev', 'mount --rbind /dev "$0/dev" && mount --make-rslave "$0/dev"'],
  ['proc', 'mount -t proc proc "$0/proc"'],
  ['run', 'mount -t tmpfs -o mode=0755 tmpfs "$0/run"'],
  ['tmp', 'mount -t tmpfs -o mode=1777 tmpfs "$0/tmp"'],
];

/** Every path under var/ with its type, size and mtime: compared before and after the command. */
function listVar(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string, rel: string): void => {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      const p = path.join(dir, n);
      const r = `${rel}/${n}`;
      const st = fs.lstatSync(p);
      out.set(r, `${st.mode} ${st.size} ${st.mtimeMs}`);
      if (st.isDirectory()) walk(p, r);
    }
  };
  walk(path.join(root, 'var'), '/var');
  return out;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export async function runTransaction(opts: TransactionOptions): Promise<TransactionResult> {
  if (opts.command.length === 0) throw new StrataError('USAGE', "admin transaction needs a command after '--', e.g. -- sh -c 'apt-get install ...'");
  const sysroot = Sysroot.open(opts.sysroot);
  const unlock = sysroot.lock();
  const work = makeWorkDir(sysroot);
  try {
    const from = startingPoint(sysroot);
    const base = layerBase(sysroot, from.checksum);
    const root = path.join(work, 'tree');
    await checkout({ repo: sysroot.repoPath, rev: from.checksum, dest: root, copy: true });
    const tree = new StagingTree(root);
    unassemble(tree);
    for (const d of ['var/cache', 'var/log', 'var/tmp']) {
      const p = path.join(root, d);
      if (tree.lstat(p)?.isDirectory()) for (const n of fs.readdirSync(p)) fs.rmSync(path.join(p, n), { recursive: true, force: true });
    }
    const made: string[] = [];
    for (const [dir] of MOUNTS) {
      const p = path.join(root, dir);
      const st = tree.lstat(p);
      if (st && !st.isDirectory()) throw new StrataError('TREE_LAYOUT', `/${dir} in the tree is not a directory; cannot mount it for the transaction`, { path: `/${dir}` });
      if (!st) {
        fs.mkdirSync(p, { mode: 0o755 });
        made.push(p);
      }
    }
    const varBefore = listVar(root);

    // Inside the new namespace: the mounts vanish with it, whatever the command does.
    const script = [
      ...MOUNTS.map(([dir, cmd]) => `${cmd} || { echo ${shellQuote(`strata: cannot mount /${dir} for the transaction`)} >&2; exit 71; }`),
      'shift; exec chroot "$0" "$@"',
    ].join('\n');
    const env = { PATH: CHROOT_PATH, LANG: 'C.UTF-8', HOME: '/root', TERM: process.env.TERM ?? 'dumb' };
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, root, '--', ...opts.command], {
      stdio: opts.stdio === 'pipe' ? ['ignore', 'pipe', 'pipe'] : 'inherit', env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024,
    });
    if (r.error) throw new StrataError('MOUNT_FAILED', `cannot run unshare: ${r.error.message} (it is in util-linux; a transaction needs root)`, {});
    const exitCode = r.status ?? 128 + 9;
    const output = opts.stdio === 'pipe' ? { stdout: r.stdout ?? '', stderr: r.stderr ?? '' } : {};
    if (exitCode !== 0) {
      const how = r.signal ? `was killed by ${r.signal}` : `exited with status ${exitCode}`;
      throw new StrataError('TRANSACTION_FAILED', `the transaction's command ${how}; nothing was deployed`, { exitCode, signal: r.signal, ...output });
    }
    for (const p of made.reverse()) fs.rmSync(p, { recursive: true, force: true });

    const varAfter = listVar(root);
    const varChanges = [...new Set([...varBefore.keys(), ...varAfter.keys()])].filter((p) => varBefore.get(p) !== varAfter.get(p)).sort();
    const warnings: string[] = [];
    if (varChanges.length) {
      const shown = varChanges.slice(0, 3).join(', ') + (varChanges.length > 3 ? `, and ${varChanges.length - 3} more` : '');
      warnings.push(`the command changed ${varChanges.length} path${varChanges.length === 1 ? '' : 's'} under /var (${shown}); they become image defaults, created at boot only where missing, not changes of the running /var`);
    }
    const prev = layeringOf(from.origin);
    const layering = { packages: prev.packages, removals: prev.removals, transaction: JSON.stringify(opts.command) };
    const d = await deployDerived(sysroot, { from, base, layering, tree: root, work, stage: opts.stage ?? false, booted: opts.booted });
    return { command: opts.command, exitCode, base, commit: d.commit, deployment: d.deploy.deployment, staged: d.deploy.staged, varChanges, warnings, ...output };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    unlock();
  }
}
