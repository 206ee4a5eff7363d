// What every benchmark suite shares: timing one whole process under
// /usr/bin/time, statistics over samples, targets, the environment checks
// and the cached rootfs pair. Progress goes to stderr.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export type Tool = 'strata' | 'ostree';
export type Tree = 'rootfs-a' | 'rootfs-b';

export const TREES: readonly Tree[] = ['rootfs-a', 'rootfs-b'];
export const TIME_BIN = '/usr/bin/time';
export const MB = 1e6;

/** A problem the user fixes (bad flag, missing tool): one line, exit 2. */
export class UsageError extends Error {}

export interface Sample {
  seconds: number;
  maxRssKiB: number;
  stdout: string;
}

export interface Stats {
  medianS: number;
  minS: number;
  maxS: number;
  samplesS: number[];
  maxRssMB: { median: number; max: number };
}

export interface Target {
  id: string;
  metric: string;
  value: number | null;
  target: string;
  met: boolean;
}

export interface Env {
  root: string;
  strataArgv: string[]; // node bin/strata.js
  ostree: string;
  trees: Record<Tree, string>;
  work: string;
}

// ---------------------------------------------------------------- small helpers

export function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

export function findRepoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'bin', 'strata.js'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new UsageError('cannot find the strata checkout (package.json and bin/strata.js) above the bench script');
    dir = up;
  }
}

export function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (!dir) continue;
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not in this directory
    }
  }
  return null;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export const r3 = (x: number): number => Math.round(x * 1000) / 1000;
export const r1 = (x: number): number => Math.round(x * 10) / 10;

export function stats(samples: Sample[]): Stats {
  const secs = samples.map((s) => s.seconds);
  const rss = samples.map((s) => (s.maxRssKiB * 1024) / MB);
  return {
    medianS: r3(median(secs)),
    minS: r3(Math.min(...secs)),
    maxS: r3(Math.max(...secs)),
    samplesS: secs.map(r3),
    maxRssMB: { median: r1(median(rss)), max: r1(Math.max(...rss)) },
  };
}

/** strata median / ostree median, from unrounded samples. */
export function ratio(s: Sample[], o: Sample[]): number {
  return r3(median(s.map((x) => x.seconds)) / median(o.map((x) => x.seconds)));
}

/** Adds a target to `targets`: `value op limit`, unmet when there is no value. */
export function addTarget(targets: Target[], id: string, metric: string, value: number | null, op: '<=' | '<', limit: number): void {
  targets.push({ id, metric, value, target: `${op} ${limit}`, met: value !== null && (op === '<=' ? value <= limit : value < limit) });
}

export const fmtSample = (s: Sample): string => `${s.seconds.toFixed(2)}s ${Math.round((s.maxRssKiB * 1024) / MB)}MB`;

export function rm(p: string): void {
  fs.rmSync(p, { recursive: true, force: true });
}

/** Runs a setup command (untimed); throws with its stderr when it fails. */
export function runSync(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${[cmd, ...args].join(' ')} exited with ${r.status ?? r.signal}: ${tail(r.stderr)}`);
  return r.stdout;
}

export function tail(text: string): string {
  const lines = text.trim().split('\n').filter(Boolean);
  return lines.slice(-3).join(' | ') || '(no output)';
}

/** Runs one timed process under /usr/bin/time; wall time measured here, peak RSS from time(1). */
export function timed(cmd: string, args: string[], cwd: string, rssFile: string): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(TIME_BIN, ['-o', rssFile, '-f', '%M', cmd, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const rssLines = fs.existsSync(rssFile) ? fs.readFileSync(rssFile, 'utf8').trim().split('\n') : [];
      rm(rssFile);
      if (code !== 0) {
        reject(new Error(`${[cmd, ...args].join(' ')} exited with ${code ?? signal}: ${tail(stderr)}`));
        return;
      }
      const maxRssKiB = Number(rssLines[rssLines.length - 1]);
      if (!Number.isFinite(maxRssKiB)) {
        reject(new Error(`${TIME_BIN} gave no peak RSS for ${cmd}`));
        return;
      }
      resolve({ seconds, maxRssKiB, stdout });
    });
  });
}

/**
 * Flushes dirty pages and waits a little before a timed step, so that
 * writeback and deferred work left by the previous step (a big `rm -rf`, a
 * checkout) is not billed to whichever tool runs next.
 */
export async function settle(ms: number): Promise<void> {
  runSync('sync', [], '/');
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** Reads every file of a tree once so that neither tool pays for a cold page cache. */
export function warmTree(root: string): { bytes: number; entries: number } {
  let bytes = 0;
  let entries = 0;
  const buf = Buffer.allocUnsafe(1 << 20);
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      entries++;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const fd = fs.openSync(p, 'r');
        try {
          let n: number;
          while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) bytes += n;
        } finally {
          fs.closeSync(fd);
        }
      }
    }
  };
  walk(root);
  return { bytes, entries };
}

// ---------------------------------------------------------------- environment

export function checkEnvironment(root: string): Omit<Env, 'trees' | 'work'> {
  if (process.getuid?.() !== 0) throw new UsageError('must run as root (make-rootfs.sh and reading every file of the rootfs need it)');
  const ostree = which('ostree');
  if (!ostree) throw new UsageError("the 'ostree' command is missing; install Debian's ostree package (npm run bench does it via scripts/ensure-deps.sh)");
  if (!fs.existsSync(TIME_BIN)) {
    log(`${TIME_BIN} is missing; installing Debian's time package`);
    try {
      runSync('apt-get', ['update', '-qq'], root);
      runSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'time'], root);
    } catch (e) {
      throw new UsageError(`${TIME_BIN} is missing and apt-get could not install 'time': ${(e as Error).message}`);
    }
  }
  if (!fs.existsSync(path.join(root, 'dist', 'src', 'cli', 'main.js'))) throw new UsageError('strata is not built; run npm run build first');
  return { root, strataArgv: [process.execPath, path.join(root, 'bin', 'strata.js')], ostree };
}

export function buildRootfs(root: string): { cache: string; trees: Record<Tree, string> } {
  const script = path.resolve(root, '..', 'shared', 'testdata', 'make-rootfs.sh');
  if (!fs.existsSync(script)) throw new UsageError(`missing ${script} (the rootfs builder)`);
  const cache = process.env.STRATA_ROOTFS_CACHE || '/var/cache/strata-testdata';
  log(`rootfs pair in ${cache} (built by make-rootfs.sh on first use; minutes)`);
  const r = spawnSync('bash', [script, cache], { stdio: ['ignore', 2, 2] });
  if (r.status !== 0) throw new Error(`make-rootfs.sh ${cache} exited with ${r.status ?? r.signal}`);
  return { cache, trees: { 'rootfs-a': path.join(cache, 'rootfs-a'), 'rootfs-b': path.join(cache, 'rootfs-b') } };
}

export function gitState(root: string): { commit: string | null; dirty: boolean | null } {
  const head = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' });
  const st = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' });
  return { commit: head.status === 0 ? head.stdout.trim() : null, dirty: st.status === 0 ? st.stdout.trim() !== '' : null };
}

export function ostreeVersion(ostree: string, root: string): string {
  return /Version: '([^']+)'/.exec(runSync(ostree, ['--version'], root))?.[1] ?? 'unknown';
}

/** The `environment` block of a suite's JSON: tools, machine, load, trees. */
export function describeEnvironment(e: {
  ostree: string;
  ostreeVersion: string;
  strata: { commit: string | null; dirty: boolean | null };
  loadStart: number[];
  rootfsCache: string;
  trees: Record<string, unknown>;
}): Record<string, unknown> {
  const load = (xs: number[]): number[] => xs.map((x) => Math.round(x * 100) / 100);
  return {
    node: process.version,
    ostree: { path: e.ostree, version: e.ostreeVersion },
    strata: e.strata,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memGB: r1(os.totalmem() / 1e9),
    loadavgStart: load(e.loadStart),
    loadavgEnd: load(os.loadavg()),
    rootfsCache: e.rootfsCache,
    trees: e.trees,
  };
}
