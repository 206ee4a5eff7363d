// Helpers for the security tests: a small honest repository to start from,
// objects written into it by hand (named by their SHA-256, as a hostile
// server or a tampered disk would present them), and the checks every
// refusal must pass: one line on stderr, the registry's exit code, no stack.

import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import { serialize } from '../../src/core/gvariant.js';
import { type Checksum, type Commit, objectPath, serializeCommit } from '../../src/core/objects.js';
import { ERROR_CODES, type ErrorCode } from '../../src/errors.js';
import type { RepoMode } from '../../src/repo/repo.js';
import { strata } from '../helpers/fixtures.js';

export const sha = (b: Uint8Array): Checksum => createHash('sha256').update(b).digest('hex') as Checksum;
export const raw = (c: Checksum): Buffer => Buffer.from(c, 'hex');

export interface RepoInfo {
  repo: string;
  mode: RepoMode;
  commit: Checksum;
  rootTree: Checksum;
  rootMeta: Checksum;
  /** Content object of /etc/hostname (a regular file). */
  file: Checksum;
  /** Content object of /bin (a symlink to usr/bin). */
  link: Checksum;
  /** dirtree of /etc. */
  etcTree: Checksum;
}

/** A small tree: /etc/hostname, /etc/os-release, /usr/bin/tool, /bin -> usr/bin. */
export function writeSmallTree(root: string): string {
  fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
  fs.mkdirSync(path.join(root, 'usr/bin'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc/hostname'), 'honest\n');
  fs.writeFileSync(path.join(root, 'etc/os-release'), 'ID=strata\n'.repeat(50));
  fs.writeFileSync(path.join(root, 'usr/bin/tool'), '#!/bin/sh\necho tool\n', { mode: 0o755 });
  fs.symlinkSync('usr/bin', path.join(root, 'bin'));
  return root;
}

export function run(args: string[], env: NodeJS.ProcessEnv = {}): ReturnType<typeof strata> {
  return strata(args, { env });
}

/** Makes a repository holding one honest commit on `main`, and names its parts. */
export function honestRepo(dir: string, mode: RepoMode = 'archive'): RepoInfo {
  const repo = path.join(dir, 'repo');
  const tree = writeSmallTree(path.join(dir, 'src'));
  expectOk(run(['init', '--repo', repo, '--mode', mode]));
  const commit = expectOk(run(['commit', '--repo', repo, '-b', 'main', '--timestamp', '1700000000', '-s', 'honest', tree])).trim() as Checksum;
  const show = run(['show', '--repo', repo, commit, '--json']).json<{ rootTree: Checksum; rootMeta: Checksum }>();
  const ls = run(['ls', '--repo', repo, '-R', '--json', commit]).json<{ path: string; checksum: Checksum }[]>();
  const at = (p: string) => ls.find((e) => e.path === p)!.checksum;
  return { repo, mode, commit, rootTree: show.rootTree, rootMeta: show.rootMeta, file: at('/etc/hostname'), link: at('/bin'), etcTree: at('/etc') };
}

export function objectFile(info: Pick<RepoInfo, 'repo' | 'mode'>, checksum: Checksum, type: 'file' | 'dirtree' | 'dirmeta' | 'commit'): string {
  return path.join(info.repo, objectPath(checksum, type, info.mode === 'archive'));
}

/** Stores bytes as a metadata object named by their checksum, as a hostile source would. */
export function putObject(info: Pick<RepoInfo, 'repo' | 'mode'>, type: 'dirtree' | 'dirmeta' | 'commit', bytes: Buffer): Checksum {
  const c = sha(bytes);
  const file = objectFile(info, c, type);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, bytes);
  return c;
}

/** A dirtree built straight from GVariant, names unchecked. */
export function dirtreeBytes(files: [string, Buffer][], dirs: [string, Buffer, Buffer][]): Buffer {
  return serialize('(a(say)a(sayay))', [files, dirs]);
}

/** A commit over the given root, named by its checksum, and a ref pointing at it. */
export function putCommit(info: RepoInfo, rootTree: Checksum, rootMeta: Checksum, ref: string): Checksum {
  const c: Commit = { metadata: [], parent: null, related: [], subject: 'hostile', body: '', timestamp: 1700000000, rootTree, rootMeta };
  const checksum = putObject(info, 'commit', serializeCommit(c));
  setRef(info, ref, checksum);
  return checksum;
}

export function setRef(info: Pick<RepoInfo, 'repo'>, ref: string, checksum: string): void {
  const file = path.join(info.repo, 'refs/heads', ref);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, checksum + '\n');
}

export function expectOk(r: ReturnType<typeof strata>): string {
  if (r.status !== 0) throw new Error(`strata exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** A refusal: non-zero exit (the registry's, when a code is given), one line on stderr, no stack trace. */
export function expectRefusal(r: ReturnType<typeof strata>, code?: ErrorCode | ErrorCode[]): void {
  expect(r.signal, r.stderr).toBeNull();
  expect(r.status, `stdout: ${r.stdout}\nstderr: ${r.stderr}`).not.toBe(0);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines, r.stderr).toHaveLength(1);
  expect(r.stderr).not.toMatch(/\n\s+at |internal error|TypeError|RangeError/);
  if (code !== undefined) {
    const codes = Array.isArray(code) ? code : [code];
    expect(codes.map((c) => ERROR_CODES[c].exit), r.stderr).toContain(r.status);
  }
}

/** Every entry under dir (names, types, sizes, link targets, modes): to prove nothing changed. */
export function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of fs.readdirSync(d).sort()) {
      const p = path.join(d, name);
      const st = fs.lstatSync(p);
      const rel = path.relative(dir, p);
      if (st.isSymbolicLink()) out.push(`${rel} -> ${fs.readlinkSync(p)}`);
      else if (st.isDirectory()) {
        out.push(`${rel}/ ${(st.mode & 0o7777).toString(8)}`);
        walk(p);
      } else out.push(`${rel} ${st.size} ${(st.mode & 0o7777).toString(8)} ${sha(fs.readFileSync(p))}`);
    }
  };
  walk(dir);
  return out;
}
