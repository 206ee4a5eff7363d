// Where a compose starts: nothing, a commit of the repository (a composed
// one is turned back into the plain /etc, /var layout), a directory, a
// tarball, or a fresh Debian from debootstrap.

import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { StrataError } from '../errors.js';
import { checkout } from '../repo/checkout.js';
import { applyDir, applyTarball } from './apply.js';
import { unassemble } from './assemble.js';
import { StagingTree } from './tree.js';
import type { BaseSpec } from './manifest.js';

export const isRoot = process.getuid?.() === 0;

/** The Debian mirror of this machine's apt sources (deb822 `URIs:` or one-line `deb`), security mirrors left out. */
export function aptMirror(etc = '/etc/apt'): string | null {
  const candidates: string[] = [];
  const dir = path.join(etc, 'sources.list.d');
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir).sort();
  } catch {
    // no sources.list.d
  }
  for (const n of names) {
    const text = fs.readFileSync(path.join(dir, n), 'utf8');
    if (n.endsWith('.sources')) for (const m of text.matchAll(/^URIs:\s*(.+)$/gm)) candidates.push(...m[1].trim().split(/\s+/));
    else if (n.endsWith('.list')) for (const m of text.matchAll(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/gm)) candidates.push(m[1]);
  }
  try {
    const text = fs.readFileSync(path.join(etc, 'sources.list'), 'utf8');
    for (const m of text.matchAll(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/gm)) candidates.push(m[1]);
  } catch {
    // no sources.list
  }
  return candidates.find((u) => /^https?:\/\//.test(u) && !/security/.test(u)) ?? null;
}

/** Runs a command, its output kept for the error; resolves when it exits 0. */
export function run(cmd: string, args: string[], what: string, opts: { cwd?: string; env?: NodeJS.ProcessEnv; debianPackage?: string } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    const keep = (d: Buffer) => {
      tail = (tail + d.toString('utf8')).slice(-4096);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') reject(new StrataError('TOOL_MISSING', `cannot ${what}: the '${cmd}' command is missing${opts.debianPackage ? `; install the Debian package ${opts.debianPackage}` : ''}`, { command: cmd }));
      else reject(err);
    });
    child.on('close', (code, signal) => {
      if (code === 0) return resolve();
      const last = tail.trim().split('\n').filter(Boolean).pop() ?? '';
      reject(new StrataError('COMMAND_FAILED', `${what} failed (${signal ?? `exit ${code}`})${last ? `: ${last}` : ''}`, { command: cmd, code, signal }));
    });
  });
}

/** What an image build leaves out of a fresh debootstrap: caches, logs, device nodes. */
function cleanDebootstrap(root: string): void {
  const rmIn = (dir: string, keep: (n: string) => boolean = () => false) => {
    const d = path.join(root, dir);
    if (!fs.existsSync(d)) return;
    for (const n of fs.readdirSync(d)) if (!keep(n)) fs.rmSync(path.join(d, n), { recursive: true, force: true });
  };
  rmIn('dev');
  rmIn('var/cache/apt', (n) => !n.endsWith('.bin'));
  rmIn('var/cache/apt/archives', (n) => n === 'partial' || n === 'lock');
  rmIn('var/lib/apt/lists', (n) => n === 'partial' || n === 'lock');
  rmIn('var/log', (n) => !n.endsWith('.log'));
  rmIn('run');
  rmIn('tmp');
}

export interface BaseResult {
  /** The commit a ref or commit base resolved to. */
  commit?: string;
}

export async function loadBase(spec: BaseSpec | null, root: string, repo: string): Promise<{ tree: StagingTree; result: BaseResult }> {
  if (spec === null) return { tree: StagingTree.create(root), result: {} };
  switch (spec.kind) {
    case 'ref':
    case 'commit': {
      // Copies, never hardlinks: the tree is edited in place and must not touch the repo's objects.
      const r = await checkout({ repo, rev: spec.rev, dest: root, copy: true });
      const tree = new StagingTree(root);
      unassemble(tree);
      return { tree, result: { commit: r.commit } };
    }
    case 'dir': {
      const tree = StagingTree.create(root);
      applyDir(tree, spec.path, true);
      return { tree, result: {} };
    }
    case 'tar': {
      const tree = StagingTree.create(root);
      await applyTarball(tree, spec.path);
      return { tree, result: {} };
    }
    case 'debootstrap': {
      if (!isRoot) throw new StrataError('NEEDS_ROOT', 'a debootstrap base needs root (debootstrap creates device nodes and chroots)', {});
      const mirror = spec.mirror ?? aptMirror();
      if (!mirror) throw new StrataError('COMMAND_FAILED', 'no Debian mirror in /etc/apt (sources.list or sources.list.d); give base.debootstrap.mirror', {});
      const args = [`--variant=${spec.variant}`];
      if (spec.packages.length > 0) args.push(`--include=${spec.packages.join(',')}`);
      if (spec.components.length > 0) args.push(`--components=${spec.components.join(',')}`);
      args.push(spec.suite, root, mirror);
      await run('debootstrap', args, `debootstrap ${spec.suite}`, { debianPackage: 'debootstrap' });
      cleanDebootstrap(root);
      const tree = new StagingTree(root);
      tree.applyMeta(root, { mode: 0o755, uid: 0, gid: 0, xattrs: [] }, true);
      return { tree, result: {} };
    }
  }
}
