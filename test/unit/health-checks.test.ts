// The health check runner on real scripts in temp directories: what passes,
// what fails and why, timeouts that must also reach a check's children, what
// is skipped, and the order checks run in.

import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runHealthChecks } from '../../src/sysroot/health-checks.js';
import { tmpDir } from '../helpers/fixtures.js';
import { isStrataError } from '../../src/errors.js';

function script(dir: string, name: string, body: string, mode = 0o755): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  fs.writeFileSync(file, `#!/bin/sh\n${body}\n`);
  fs.chmodSync(file, mode);
  return file;
}

function checkDirs() {
  const root = tmpDir('strata-health-');
  return { root, required: path.join(root, 'required.d'), wanted: path.join(root, 'wanted.d') };
}

/** True while `pid` is a live process (a zombie no one has reaped yet counts as gone). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return !alive(pid);
}

describe('runHealthChecks', () => {
  it('passes when every required check exits 0, and reports each one', async () => {
    const d = checkDirs();
    script(d.required, '10-disk', 'echo disk ok');
    script(d.required, '20-net', 'echo "net ok" >&2');
    const report = await runHealthChecks({ dirs: { required: [d.required], wanted: [d.wanted] }, timeoutMs: 10_000 });
    expect(report.ok).toBe(true);
    expect(report.warnings).toEqual([]);
    expect(report.checks.map((c) => [c.name, c.kind, c.ok, c.exitCode, c.signal, c.reason])).toEqual([
      ['10-disk', 'required', true, 0, null, null],
      ['20-net', 'required', true, 0, null, null],
    ]);
    expect(report.checks[0].outputTail).toBe('disk ok\n');
    expect(report.checks[1].outputTail).toBe('net ok\n');
    expect(report.checks[0].path).toBe(path.join(d.required, '10-disk'));
  });

  it('fails on a required check exiting 3, naming the code and the end of its output', async () => {
    const d = checkDirs();
    script(d.required, '10-ok', 'true');
    script(d.required, '20-service', 'echo checking service\necho "service strata-agent is not running" >&2\nexit 3');
    const report = await runHealthChecks({ dirs: { required: [d.required], wanted: [] }, timeoutMs: 10_000 });
    expect(report.ok).toBe(false);
    const failed = report.checks[1];
    expect(failed).toMatchObject({ name: '20-service', ok: false, exitCode: 3, signal: null });
    expect(failed.reason).toBe('exited with code 3: service strata-agent is not running');
    expect(failed.outputTail).toContain('checking service\n');
    expect(failed.outputTail).toContain('service strata-agent is not running\n');
  });

  it('keeps only the last 4 KB of output', async () => {
    const d = checkDirs();
    script(d.required, 'noisy', 'i=0; while [ $i -lt 2000 ]; do echo "line $i"; i=$((i+1)); done; exit 1');
    const [check] = (await runHealthChecks({ dirs: { required: [d.required], wanted: [] }, timeoutMs: 10_000 })).checks;
    expect(Buffer.byteLength(check.outputTail)).toBeLessThanOrEqual(4096);
    expect(Buffer.byteLength(check.outputTail)).toBeGreaterThan(4000);
    expect(check.outputTail.endsWith('line 1999\n')).toBe(true);
    expect(check.outputTail).not.toContain('line 0\n');
    expect(check.reason).toBe('exited with code 1: line 1999');
  });

  it('stops a check that overruns its timeout, and the children it started', async () => {
    const d = checkDirs();
    const pidFile = path.join(d.root, 'sleep.pid');
    script(d.required, 'hang', `echo started\nsleep 30 &\necho $! > ${pidFile}\nwait`);
    const t0 = Date.now();
    const report = await runHealthChecks({ dirs: { required: [d.required], wanted: [] }, timeoutMs: 300 });
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(report.ok).toBe(false);
    const [check] = report.checks;
    expect(check.ok).toBe(false);
    expect(check.reason).toBe('timed out after 0.3s: started');
    expect(check.signal).toBe('SIGTERM');
    expect(check.exitCode).toBeNull();
    expect(check.durationMs).toBeGreaterThanOrEqual(290);
    const sleepPid = Number(fs.readFileSync(pidFile, 'utf8'));
    expect(await waitGone(sleepPid, 2000)).toBe(true);
  });

  it('kills a check that ignores SIGTERM once the grace period ends', async () => {
    const d = checkDirs();
    const pidFile = path.join(d.root, 'child.pid');
    // The child ignores SIGTERM too, so only SIGKILL to the group ends it.
    script(d.required, 'stubborn', `trap '' TERM\nsh -c "trap '' TERM; sleep 30" &\necho $! > ${pidFile}\nwhile :; do sleep 0.05; done`);
    const t0 = Date.now();
    const [check] = (await runHealthChecks({ dirs: { required: [d.required], wanted: [] }, timeoutMs: 200 })).checks;
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(2000);
    expect(elapsed).toBeLessThan(6000);
    expect(check.reason).toBe('timed out after 0.2s');
    expect(check.signal).toBe('SIGKILL');
    expect(await waitGone(Number(fs.readFileSync(pidFile, 'utf8')), 2000)).toBe(true);
  });

  it('does not wait for a background process that keeps the output pipe open', async () => {
    const d = checkDirs();
    const pidFile = path.join(d.root, 'bg.pid');
    script(d.required, 'leaves-child', `sleep 30 &\necho $! > ${pidFile}\necho done`);
    const t0 = Date.now();
    const report = await runHealthChecks({ dirs: { required: [d.required], wanted: [] }, timeoutMs: 10_000 });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(report.checks[0]).toMatchObject({ ok: true, exitCode: 0, outputTail: 'done\n' });
    process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGKILL');
  });

  it('skips non-executable, hidden and non-file entries, and lists them', async () => {
    const d = checkDirs();
    script(d.required, '10-runs', 'true');
    script(d.required, '20-not-executable', 'exit 1', 0o644);
    script(d.required, '.hidden', 'exit 1');
    fs.mkdirSync(path.join(d.required, '30-dir'));
    fs.symlinkSync('missing-target', path.join(d.required, '40-dangling'));
    const report = await runHealthChecks({ dirs: { required: [d.required], wanted: [] }, timeoutMs: 10_000 });
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => c.name)).toEqual(['10-runs']);
    expect(report.skipped.map((s) => [s.name, s.reason])).toEqual([
      ['.hidden', 'hidden'],
      ['20-not-executable', 'not executable'],
      ['30-dir', 'not a regular file'],
      ['40-dangling', 'broken symlink'],
    ]);
    expect(report.warnings).toHaveLength(2);
    expect(report.warnings[0]).toMatch(/20-not-executable is not executable/);
  });

  it('only warns when a wanted check fails', async () => {
    const d = checkDirs();
    script(d.required, 'must', 'true');
    script(d.wanted, 'nice-to-have', 'echo "cache is cold"; exit 2');
    const report = await runHealthChecks({ dirs: { required: [d.required], wanted: [d.wanted] }, timeoutMs: 10_000 });
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => [c.name, c.kind, c.ok])).toEqual([['must', 'required', true], ['nice-to-have', 'wanted', false]]);
    expect(report.warnings).toEqual(['wanted check nice-to-have failed: exited with code 2: cache is cold']);
  });

  it('runs required checks first, each directory in name order, one at a time', async () => {
    const d = checkDirs();
    const log = path.join(d.root, 'order.log');
    // Each check records its start and end; overlapping runs would interleave them.
    const body = (name: string) => `echo "start ${name}" >> ${log}\nsleep 0.05\necho "end ${name}" >> ${log}`;
    for (const name of ['b', '10-x', '2-y', 'A']) script(d.wanted, name, body(`wanted/${name}`));
    for (const name of ['z', '01-first', 'B']) script(d.required, name, body(`required/${name}`));
    const report = await runHealthChecks({ dirs: { required: [d.required], wanted: [d.wanted] }, timeoutMs: 10_000 });
    const order = ['required/01-first', 'required/B', 'required/z', 'wanted/10-x', 'wanted/2-y', 'wanted/A', 'wanted/b'];
    expect(report.checks.map((c) => `${c.kind}/${c.name}`)).toEqual(order);
    expect(fs.readFileSync(log, 'utf8').trim().split('\n')).toEqual(order.flatMap((n) => [`start ${n}`, `end ${n}`]));
  });

  it('treats missing directories as having no checks', async () => {
    const d = checkDirs();
    const report = await runHealthChecks({ dirs: { required: [d.required, path.join(d.root, 'nope')], wanted: [d.wanted] }, timeoutMs: 1000 });
    expect(report).toEqual({ ok: true, checks: [], skipped: [], warnings: [] });
  });

  it('passes env and cwd to each check', async () => {
    const d = checkDirs();
    const work = path.join(d.root, 'work');
    fs.mkdirSync(work);
    script(d.required, 'env', 'test "$STRATA_BOOTED" = yes && test "$(pwd)" = "' + work + '" && test -n "$PATH"');
    const report = await runHealthChecks({ dirs: { required: [d.required], wanted: [] }, timeoutMs: 10_000, env: { STRATA_BOOTED: 'yes' }, cwd: work });
    expect(report.checks[0].reason).toBeNull();
    expect(report.ok).toBe(true);
  });

  it('fails a required check that cannot be started', async () => {
    const d = checkDirs();
    fs.mkdirSync(d.required, { recursive: true });
    fs.writeFileSync(path.join(d.required, 'no-interpreter'), '#!/nonexistent/shell\n');
    fs.chmodSync(path.join(d.required, 'no-interpreter'), 0o755);
    const report = await runHealthChecks({ dirs: { required: [d.required], wanted: [] }, timeoutMs: 10_000 });
    expect(report.ok).toBe(false);
    expect(report.checks[0].reason).toMatch(/^could not start: .*ENOENT/);
  });

  it('refuses to bless when a required directory cannot be read', async () => {
    const d = checkDirs();
    fs.writeFileSync(d.required, 'a file, not a directory');
    const err = await runHealthChecks({ dirs: { required: [d.required], wanted: [] }, timeoutMs: 1000 }).catch((e: unknown) => e);
    expect(isStrataError(err, 'IO')).toBe(true);
  });
});
