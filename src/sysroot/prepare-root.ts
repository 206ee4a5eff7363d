// `strata admin prepare-root`: what an initramfs does before switching root.
// The deployment is bind-mounted as the new root and made read-only; its
// /etc stays writable (a bind of itself) and /var is the stateroot's shared
// one. With a command, this happens in a private mount namespace (unshare -m)
// and the command runs chrooted in the result; without one, the mounts are
// made at --target in the current namespace, as an initramfs would.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { StrataError } from '../errors.js';
import { splitKargs } from './kargs.js';
import { findDeployment } from './manage.js';
import { type Deployment, Sysroot } from './sysroot.js';

export interface PrepareRootOptions {
  sysroot: string;
  /** Index or checksum; default: the booted deployment (--booted, or ostree= of /proc/cmdline). */
  deployment?: string;
  booted?: string;
  /** Mount point for the new root (required without a command). */
  target?: string;
  /** Run this chrooted in a private mount namespace. */
  command?: string[];
}

export interface PrepareRootResult {
  deployment: string;
  target: string;
  exitCode: number | null;
}

/** The mounts, in order, as shell commands (one script for unshare, or run one by one). */
function mountScript(deployDir: string, varDir: string, target: string): string[][] {
  return [
    ['mount', '--bind', deployDir, target],
    ['mount', '--bind', path.join(deployDir, 'etc'), path.join(target, 'etc')],
    ['mount', '--bind', varDir, path.join(target, 'var')],
    // Only the root bind becomes read-only; /etc and /var are mounts of their own.
    ['mount', '-o', 'remount,bind,ro', target],
  ];
}

function pickDeployment(sysroot: Sysroot, opts: PrepareRootOptions): Deployment {
  const list = sysroot.deployments();
  if (opts.deployment !== undefined) return findDeployment(list, opts.deployment);
  const booted = sysroot.booted(list, opts.booted ?? cmdlineOstree());
  if (!booted) throw new StrataError('NOT_BOOTED', 'no deployment to prepare: pass --deployment N, --booted PATH, or boot with ostree= on the kernel command line', {});
  return booted;
}

function cmdlineOstree(): string | undefined {
  try {
    return splitKargs(fs.readFileSync('/proc/cmdline', 'utf8').trim()).find((a) => a.startsWith('ostree='));
  } catch {
    return undefined;
  }
}

export function prepareRoot(opts: PrepareRootOptions): PrepareRootResult {
  const sysroot = Sysroot.open(opts.sysroot);
  const d = pickDeployment(sysroot, opts);
  const deployDir = sysroot.deploymentDir(d);
  const varDir = path.join(sysroot.staterootDir(d.stateroot), 'var');
  for (const p of [path.join(deployDir, 'etc'), path.join(deployDir, 'var'), varDir]) {
    if (!fs.existsSync(p)) throw new StrataError('MOUNT_FAILED', `cannot prepare ${deployDir}: ${p} does not exist`, { path: p });
  }
  const id = `${d.stateroot}/${d.checksum}.${d.serial}`;
  if (!opts.command?.length) {
    if (!opts.target) throw new StrataError('USAGE', 'prepare-root needs --target DIR, or a command to run (after --)');
    for (const argv of mountScript(deployDir, varDir, opts.target)) run(argv);
    return { deployment: id, target: opts.target, exitCode: null };
  }
  const target = opts.target ?? fs.mkdtempSync(path.join(os.tmpdir(), 'strata-root-'));
  // The script runs inside the new namespace: mounts vanish with it.
  const script = [
    ...mountScript(deployDir, varDir, target).map((argv) => {
      const cmd = argv.map(shellQuote).join(' ');
      return `${cmd} || { echo ${shellQuote(`strata: ${argv.join(' ')} failed`)} >&2; exit 71; }`;
    }),
    'mount -t proc proc "$0/proc" 2>/dev/null || true',
    'exec chroot "$0" "$@"',
  ].join('\n');
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, target, ...opts.command], { stdio: 'inherit' });
  if (!opts.target) fs.rmSync(target, { recursive: true, force: true });
  if (r.error) throw new StrataError('MOUNT_FAILED', `cannot run unshare: ${r.error.message} (it is in util-linux; prepare-root needs root)`, {});
  return { deployment: id, target, exitCode: r.status ?? 128 + 9 };
}

function run(argv: string[]): void {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new StrataError('MOUNT_FAILED', `${argv.join(' ')} failed: ${(r.stderr || r.error?.message || '').trim().split('\n')[0]}`, { argv });
  }
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
