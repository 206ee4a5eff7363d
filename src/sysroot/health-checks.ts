// Health checks in the manner of greenboot: every executable in the required
// directories must pass for a boot to be blessed; checks in the wanted
// directories only warn. Checks run one at a time, in name order, because a
// later check may rely on what an earlier one verified or prepared.

import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { ioError } from '../errors.js';

export type HealthCheckKind = 'required' | 'wanted';

export interface HealthCheckOptions {
  dirs: { required: string[]; wanted: string[] };
  /** Per check, in milliseconds; a check still running then is stopped and fails. */
  timeoutMs: number;
  /** Added to this process's environment for every check. */
  env?: Record<string, string>;
  cwd?: string;
}

export interface HealthCheckResult {
  name: string;
  path: string;
  kind: HealthCheckKind;
  ok: boolean;
  /** Null when the check was ended by a signal or never started. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  durationMs: number;
  /** Why the check failed; null when it passed. */
  reason: string | null;
  /** The last few KB of stdout and stderr, interleaved as they arrived. */
  outputTail: string;
}

export interface SkippedCheck {
  name: string;
  path: string;
  kind: HealthCheckKind;
  reason: 'hidden' | 'not executable' | 'not a regular file' | 'broken symlink';
}

export interface HealthReport {
  /** True when every required check passed (wanted checks never change it). */
  ok: boolean;
  checks: HealthCheckResult[];
  skipped: SkippedCheck[];
  warnings: string[];
}

/** How much output each check keeps: enough to show why it failed. */
export const OUTPUT_TAIL_BYTES = 4096;
/** Time between SIGTERM and SIGKILL when a check overruns. */
export const KILL_GRACE_MS = 2000;
/** How long to wait for output pipes after a check exits (a background child may hold them). */
const DRAIN_MS = 500;

interface Candidate {
  name: string;
  path: string;
  kind: HealthCheckKind;
}

export async function runHealthChecks(opts: HealthCheckOptions): Promise<HealthReport> {
  if (!Number.isFinite(opts.timeoutMs) || opts.timeoutMs <= 0) throw new RangeError(`timeoutMs must be a positive number, got ${opts.timeoutMs}`);
  const report: HealthReport = { ok: true, checks: [], skipped: [], warnings: [] };
  const candidates: Candidate[] = [];
  for (const kind of ['required', 'wanted'] as const) {
    for (const dir of opts.dirs[kind]) candidates.push(...listChecks(dir, kind, report));
  }
  const env = { ...process.env, ...opts.env };
  for (const c of candidates) {
    const result = await runOne(c, { timeoutMs: opts.timeoutMs, env, cwd: opts.cwd });
    report.checks.push(result);
    if (result.ok) continue;
    if (c.kind === 'required') report.ok = false;
    else report.warnings.push(`wanted check ${c.name} failed: ${result.reason}`);
  }
  return report;
}

/** The checks in one directory, sorted by name (byte order, as `LC_ALL=C ls`); a missing directory has none. */
function listChecks(dir: string, kind: HealthCheckKind, report: HealthReport): Candidate[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return [];
    // A required directory we cannot read must not let the boot be blessed.
    if (kind === 'required') throw ioError(err, 'read health check directory', dir);
    report.warnings.push(`cannot read wanted check directory ${dir}: ${code ?? String(err)}`);
    return [];
  }
  names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const out: Candidate[] = [];
  for (const name of names) {
    const file = path.join(dir, name);
    const skip = (reason: SkippedCheck['reason']) => report.skipped.push({ name, path: file, kind, reason });
    if (name.startsWith('.')) {
      skip('hidden');
      continue;
    }
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      skip('broken symlink');
      report.warnings.push(`${kind} check ${file} is a broken symlink; skipped`);
      continue;
    }
    if (!st.isFile()) {
      skip('not a regular file');
      continue;
    }
    if ((st.mode & 0o111) === 0) {
      // Usually a forgotten chmod +x, so say so rather than skip in silence.
      skip('not executable');
      report.warnings.push(`${kind} check ${file} is not executable; skipped`);
      continue;
    }
    out.push({ name, path: file, kind });
  }
  return out;
}

/** Keeps the last `limit` bytes of everything written to it. */
class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - this.chunks[0].length >= this.limit) this.size -= this.chunks.shift()!.length;
  }

  text(): string {
    const all = Buffer.concat(this.chunks);
    let start = Math.max(0, all.length - this.limit);
    // Do not begin in the middle of a UTF-8 sequence.
    while (start < all.length && start > 0 && (all[start] & 0xc0) === 0x80) start++;
    return all.subarray(start).toString('utf8');
  }
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))}s`;
}

function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const line = lines[lines.length - 1] ?? '';
  return line.length > 200 ? `…${line.slice(-200)}` : line;
}

/** Signals every process in the check's group; the group may already be gone. */
function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: nothing left to signal.
  }
}

function runOne(c: Candidate, opts: { timeoutMs: number; env: NodeJS.ProcessEnv; cwd?: string }): Promise<HealthCheckResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    const tail = new Tail(OUTPUT_TAIL_BYTES);
    let timedOut = false;
    let killed = false;
    let spawnError: Error | null = null;
    let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    let termTimer: NodeJS.Timeout | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    let drainTimer: NodeJS.Timeout | undefined;
    let settled = false;

    // Its own process group, so a timeout reaches the children a check starts.
    const child = spawn(c.path, [], { cwd: opts.cwd, env: opts.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => tail.push(d));
    child.stderr.on('data', (d: Buffer) => tail.push(d));

    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(termTimer);
      clearTimeout(killTimer);
      clearTimeout(drainTimer);
      const exitCode = exited?.code ?? null;
      const signal = exited?.signal ?? null;
      const outputTail = tail.text();
      let reason: string | null = null;
      if (spawnError) reason = `could not start: ${spawnError.message}`;
      else if (timedOut) reason = `timed out after ${seconds(opts.timeoutMs)}`;
      else if (signal) reason = `killed by ${signal}`;
      else if (exitCode !== 0) reason = `exited with code ${exitCode}`;
      if (reason && !spawnError) {
        const last = lastLine(outputTail);
        if (last) reason += `: ${last}`;
      }
      resolve({
        name: c.name,
        path: c.path,
        kind: c.kind,
        ok: reason === null,
        exitCode,
        signal,
        durationMs: Math.round(performance.now() - started),
        reason,
        outputTail,
      });
    };

    // 'close' waits for the output pipes, which a process that left the group
    // can hold open for ever: once the check has exited (and, after a timeout,
    // its group has been killed), give the output a moment, then stop reading.
    const drainThenFinish = () => {
      clearTimeout(drainTimer);
      drainTimer = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        if (exited) finish();
      }, DRAIN_MS);
    };

    if (child.pid !== undefined) {
      const pid = child.pid;
      termTimer = setTimeout(() => {
        timedOut = true;
        killGroup(pid, 'SIGTERM');
        killTimer = setTimeout(() => {
          killed = true;
          killGroup(pid, 'SIGKILL');
          if (exited) drainThenFinish();
        }, KILL_GRACE_MS);
      }, opts.timeoutMs);
    }

    child.on('error', (err) => {
      spawnError = err;
      finish();
    });
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      if (!timedOut) {
        clearTimeout(termTimer);
        drainThenFinish();
      } else if (killed) {
        drainThenFinish();
      }
      // Timed out but not yet killed: the rest of the group gets its grace;
      // 'close' (all of it gone) or the SIGKILL ends the wait.
    });
    child.on('close', () => {
      if (exited) finish();
    });
  });
}
