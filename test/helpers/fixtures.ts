// Fixtures shared by tests: temp directories, the CLI as a user runs it, a
// generated tree with every entry kind, and the real Debian rootfs pair.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type ChildProcess, execFileSync, spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { afterAll } from 'vitest';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const CLI = path.join(ROOT, 'bin', 'strata.js');
export const isRoot = process.getuid?.() === 0;

const made: string[] = [];
afterAll(() => {
  for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A fresh temp directory, removed after the test file. */
export function tmpDir(prefix = 'strata-test-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

/** Runs the built CLI (npm test builds first) and returns its outcome. */
export function strata(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> & { json<T = unknown>(): T } {
  if (!fs.existsSync(path.join(ROOT, 'dist/src/cli/main.js'))) {
    throw new Error('dist/ is missing: run `npm run build` (npm test does it)');
  }
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', input: opts.input, env: { ...process.env, ...opts.env }, maxBuffer: 256 * 1024 * 1024 });
  return Object.assign(r, { json: <T>() => JSON.parse(r.stdout) as T });
}

export function sh(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', cwd: opts.cwd, maxBuffer: 256 * 1024 * 1024 });
}

export function ostree(args: string[]): SpawnSyncReturns<string> {
  return spawnSync('ostree', args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
}

/**
 * A tree with every entry kind strata commits: regular, empty and large
 * files, nested and empty directories, symlinks (relative, absolute,
 * dangling), hardlinks, setuid/setgid/sticky modes, odd permissions,
 * other owners (as root) and xattrs (user.*, and a binary value).
 */
export function makeTree(root: string, variant = 0): string {
  const w = (p: string, content: string | Buffer, mode = 0o644) => {
    const f = path.join(root, p);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, content);
    fs.chmodSync(f, mode);
    return f;
  };
  fs.mkdirSync(root, { recursive: true });
  w('etc/hostname', `host-${variant}\n`);
  w('etc/empty', '');
  w('usr/bin/tool', '#!/bin/sh\necho tool\n', 0o755);
  w('usr/bin/su-helper', 'setuid helper\n', 0o4755);
  w('usr/bin/sg-helper', 'setgid helper\n', 0o2755);
  w('usr/share/big.bin', Buffer.alloc(3 * 1024 * 1024 + 17, variant + 1));
  w('usr/share/odd-perms', 'odd\n', 0o600);
  w('usr/share/no-read', 'secret\n', 0o000);
  w('usr/share/name with spaces ü', 'unicode\n');
  fs.mkdirSync(path.join(root, 'var/empty'), { recursive: true });
  fs.mkdirSync(path.join(root, 'tmp'), { recursive: true });
  fs.chmodSync(path.join(root, 'tmp'), 0o1777);
  fs.mkdirSync(path.join(root, 'usr/share/deep/a/b/c/d'), { recursive: true });
  w('usr/share/deep/a/b/c/d/leaf', 'leaf\n');
  fs.symlinkSync('tool', path.join(root, 'usr/bin/tool-link'));
  fs.symlinkSync('/etc/hostname', path.join(root, 'usr/bin/abs-link'));
  fs.symlinkSync('does/not/exist', path.join(root, 'usr/bin/dangling'));
  fs.symlinkSync('usr/bin', path.join(root, 'bin'));
  fs.linkSync(path.join(root, 'usr/bin/tool'), path.join(root, 'usr/bin/tool-hardlink'));
  const x = w('usr/share/with-xattrs', 'xattrs\n');
  sh('setfattr', ['-n', 'user.strata.test', '-v', 'hello', x]);
  sh('setfattr', ['-n', 'user.binary', '-v', '0x00ff01', x]);
  if (isRoot) {
    const o = w('usr/share/owned', 'owned by 1000:1000\n');
    fs.chownSync(o, 1000, 1000);
    fs.mkdirSync(path.join(root, 'home/user'), { recursive: true });
    fs.chownSync(path.join(root, 'home/user'), 1000, 100);
  }
  return root;
}

/** The real Debian rootfs pair (make-rootfs.sh, cached); null when it cannot be built here. */
export function rootfsPair(): { a: string; b: string } | null {
  const cache = process.env.STRATA_ROOTFS_CACHE ?? '/var/cache/strata-testdata';
  const a = path.join(cache, 'rootfs-a');
  const b = path.join(cache, 'rootfs-b');
  if (fs.existsSync(path.join(cache, 'rootfs-b.complete'))) return { a, b };
  if (!isRoot) return null;
  const script = path.resolve(ROOT, '../shared/testdata/make-rootfs.sh');
  // flock: test files running side by side must not debootstrap into one directory at once.
  fs.mkdirSync(path.dirname(cache), { recursive: true });
  const r = spawnSync('flock', [`${cache}.lock`, 'bash', script, cache], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`make-rootfs.sh failed: ${r.stderr}`);
  return { a, b };
}

/** Runs a command to completion without blocking the event loop (several can run side by side). */
export function runAsync(cmd: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Runs `strata ARGS` (a server started with `--port 0 --json`) and resolves with the URL it prints once listening. */
export function startCliServer(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ url: string; child: ChildProcess; log: () => string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d;
      const m = /"url":\s*"([^"]+)"/.exec(out);
      if (m) resolve({ url: m[1], child, log: () => stderr });
    });
    child.on('exit', (code) => reject(new Error(`strata ${args[0]} exited ${code}: ${stderr}`)));
  });
}

/** Starts `strata serve --port 0 --json` and resolves with its URL once it listens. */
export function startStrataServe(repo: string): Promise<{ url: string; child: ChildProcess; log: () => string }> {
  return startCliServer(['serve', '--repo', repo, '--port', '0', '--json']);
}
