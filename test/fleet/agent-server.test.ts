// The agent against the real fleet server (SQLite) and real sysroots: the
// CLI enrolls and steps; FleetLock serializes reboots; a server outage
// neither loses reports nor stops an update already instructed; the reboot
// command never runs twice for one update, whatever happens in between.

import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/fleet/app.js';
import type { FleetDb } from '../../src/fleet/db.js';
import { createAdminToken } from '../../src/fleet/tokens.js';
import { agentEnroll, agentStep, rebootMarker } from '../../src/fleet/agent/agent.js';
import { loadState } from '../../src/fleet/agent/state.js';
import { CLI, runAsync, tmpDir } from '../helpers/fixtures.js';
import { FLEET_REF, type SimDevice, agentOptionsFor, makeDevice, makeServedRepo, rebootDevice, rebootsOf, runningCommit } from '../helpers/agent-device.js';
import { openTestDb } from './helpers/fleet.js';

let app: FastifyInstance;
let fdb: FleetDb;
let cleanupDb: () => Promise<void>;
let server: string;
let admin: string;
let repoDir: string;
let base: string;
let v1: string;
let v2: string;
let relV2: string;

async function api<T = unknown>(method: string, url: string, body?: unknown): Promise<T> {
  const res = await fetch(new URL(url, server), { method, headers: { authorization: `Bearer ${admin}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

/** The CLI as a user runs it, without blocking this process's event loop (the server answers from it). */
async function strata(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string; json<T>(): T }> {
  const r = await runAsync(process.execPath, [CLI, ...args]);
  return { ...r, json: <T>() => JSON.parse(r.stdout) as T };
}

async function startServer(port = 0): Promise<void> {
  app = await buildApp({ db: fdb, repo: repoDir, pollAfterSeconds: 0, evaluateEverySeconds: 0 });
  server = await app.listen({ host: '127.0.0.1', port });
}

async function enrolledDevices(group: string, n: number): Promise<SimDevice[]> {
  await api('POST', '/v1/groups', { name: group, channel: 'stable' });
  const token = (await api<{ token: string }>('POST', '/v1/enrollment-tokens', { group, reusable: true })).token;
  const out: SimDevice[] = [];
  for (let i = 0; i < n; i++) {
    const d = await makeDevice(base, `${group}-${i}`, repoDir, v1);
    d.id = (await agentEnroll({ server, enrollmentToken: token, name: d.name, stateFile: d.stateFile })).deviceId;
    out.push(d);
  }
  return out;
}

beforeAll(async () => {
  base = tmpDir('strata-agent-server-');
  repoDir = path.join(base, 'repo');
  [v1, v2] = await makeServedRepo(repoDir, [{ version: '1.0' }, { version: '2.0' }]);
  const db = await openTestDb('sqlite');
  fdb = db.fdb;
  cleanupDb = db.cleanup;
  await startServer();
  admin = (await createAdminToken(fdb, { name: 'agent-tests', role: 'admin', actor: 'test' })).token;
  await api('POST', '/v1/channels', { name: 'stable', ref: FLEET_REF });
  await api('POST', '/v1/releases', { channel: 'stable', commit: v1, version: '1.0' });
  relV2 = (await api<{ id: string }>('POST', '/v1/releases', { channel: 'stable', commit: v2, version: '2.0' })).id;
}, 60_000);

afterAll(async () => {
  await app?.close();
  await fdb?.close();
  await cleanupDb?.();
});

describe('strata agent against the fleet server', () => {
  it('the CLI enrolls (token kept 0600, never printed) and a step reports what the device runs', async () => {
    await api('POST', '/v1/groups', { name: 'cli', channel: 'stable' });
    const token = (await api<{ token: string }>('POST', '/v1/enrollment-tokens', { group: 'cli' })).token;
    const d = await makeDevice(base, 'cli-0', repoDir, v1);
    let r = await strata(['agent', 'enroll', '--server', server, '--enrollment-token', token, '--name', d.name, '--labels', 'site=lyon', '--state', d.stateFile, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const id = r.json<{ deviceId: string }>().deviceId;
    expect(fs.statSync(d.stateFile).mode & 0o777).toBe(0o600);
    expect(loadState(d.stateFile)).toMatchObject({ deviceId: id, group: 'cli' });
    // The one-time token is spent: enrolling again is refused, and the state file is left alone.
    const before = fs.readFileSync(d.stateFile, 'utf8');
    r = await strata(['agent', 'enroll', '--server', server, '--enrollment-token', token, '--name', d.name, '--state', d.stateFile, '--force']);
    expect(r.status).toBe(77);
    expect(r.stderr).toMatch(/FLEET_ENROLLMENT_REFUSED/);
    expect(fs.readFileSync(d.stateFile, 'utf8')).toBe(before);

    r = await strata(['agent', 'run', '--once', '--json', '--sysroot', d.dir, '--booted', d.booted, '--state', d.stateFile, '--no-reboot']);
    expect(r.status, r.stderr).toBe(0);
    const step = r.json<{ reportsSent: string[]; phase: string; state: Record<string, unknown> }>();
    expect(step.reportsSent).toEqual(['checking']);
    expect(step.phase).toBe('idle');
    expect(r.stdout).not.toContain(loadState(d.stateFile).token as string);
    const dev = await api<{ booted: { commit: string }; etcDigest: string; verify: { ok: boolean }; deployments: unknown[] }>('GET', `/v1/devices/${id}`);
    expect(dev).toMatchObject({ booted: { commit: v1 }, verify: { ok: true } });
    expect(dev.etcDigest).toBe((await strata(['agent', 'etc-digest', '--sysroot', d.dir, '--booted', d.booted])).stdout.trim());
    // A bad token is a refusal, not an outage.
    r = await strata(['agent', 'run', '--once', '--sysroot', d.dir, '--booted', d.booted, '--state', d.stateFile, '--token', 'x'.repeat(43), '--no-reboot']);
    expect(r.status).toBe(77);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('fleet-lock: the device stages, is refused the reboot slot while another device holds it, and reboots once it is free', async () => {
    const [a, other] = await enrolledDevices('locked', 2);
    await api('POST', '/v1/rollouts', { releaseId: relV2, group: 'locked', waves: [{ percent: 100, soakSeconds: 0 }], maxConcurrent: 1, failureThreshold: 0.5, graceSeconds: 0 });
    const lock = (route: string) => fetch(new URL(route, server), { method: 'POST', headers: { 'fleet-lock-protocol': 'true', 'content-type': 'application/json' }, body: JSON.stringify({ client_params: { id: other.id, group: 'locked' } }) });
    // Another device of the group holds the only reboot slot (as Zincati would take it).
    expect((await lock('/v1/pre-reboot')).status).toBe(200);
    // A function: the booted deployment changes with the reboot.
    const opts = () => agentOptionsFor(a, { config: { strategy: 'fleet-lock' } });
    let r = await agentStep(opts());
    expect(r.rebooted).toBe(false);
    expect(r.reportsSent).toEqual(expect.arrayContaining(['downloading', 'staged']));
    expect(r.wait?.reason).toMatch(/reboot slot refused/);
    expect(loadState(a.stateFile).phase.name).toBe('staged');
    r = await agentStep(opts());
    expect(r.rebooted).toBe(false);
    expect((await lock('/v1/steady-state')).status).toBe(200);
    r = await agentStep(opts());
    expect(r.rebooted).toBe(true);
    expect(await api('GET', '/v1/fleetlock')).toEqual([expect.objectContaining({ holder: a.id, group: 'locked' })]);
    await rebootDevice(a);
    r = await agentStep(opts());
    expect(r.reportsSent).toEqual(expect.arrayContaining(['booted', 'healthy']));
    expect(r.actions).toContain('release-lock');
    expect(await api('GET', '/v1/fleetlock')).toEqual([]);
    expect(runningCommit(a)).toBe(v2);
    expect(rebootsOf(a)).toBe(1);
  });

  it('a server outage after the reboot: reports wait in the state file, back-off is capped, and they arrive once the server is back', async () => {
    const [d] = await enrolledDevices('outage', 1);
    await api('POST', '/v1/rollouts', { releaseId: relV2, group: 'outage', waves: [{ percent: 100, soakSeconds: 0 }], maxConcurrent: 5, failureThreshold: 0.5, graceSeconds: 0 });
    // Told to deploy, stage... and the server dies right before the step that reboots.
    const first = await agentStep(agentOptionsFor(d, { rebootCommand: null }));
    expect(first.rebooted).toBe(true);
    // Nothing ran: with --no-reboot the device reboots some other way (here: the test).
    expect(rebootsOf(d)).toBe(0);
    const port = Number(new URL(server).port);
    await app.close();
    await rebootDevice(d);
    expect(runningCommit(d)).toBe(v2);
    let r = await agentStep(agentOptionsFor(d));
    expect(r.reportsSent).toEqual([]);
    let s = loadState(d.stateFile);
    expect(s.outbox.map((x) => x.state)).toEqual(['booted', 'healthy']);
    expect(s.backoff.failures).toBeGreaterThan(0);
    expect(s.phase.name).toBe('idle');
    // Still down, still backing off: no second reboot, nothing lost, the wait is capped.
    r = await agentStep(agentOptionsFor(d, { now: () => Date.parse(s.backoff.until!) + 1 }));
    s = loadState(d.stateFile);
    expect(s.outbox).toHaveLength(2);
    expect(r.wait!.seconds).toBeLessThanOrEqual(600);
    await startServer(port);
    r = await agentStep(agentOptionsFor(d, { now: () => Date.parse(s.backoff.until!) + 1 }));
    expect(r.reportsSent).toEqual(['booted', 'healthy']);
    expect(loadState(d.stateFile)).toMatchObject({ outbox: [], backoff: { failures: 0, until: null } });
    expect(await api(`GET`, `/v1/devices/${d.id}`)).toMatchObject({ state: 'healthy', booted: { commit: v2 } });
    expect(rebootsOf(d)).toBe(0);
  });

  it('never runs the reboot command twice for one update: not while the reboot is pending, not after a boot that did not switch', async () => {
    const [d] = await enrolledDevices('once', 1);
    await api('POST', '/v1/rollouts', { releaseId: relV2, group: 'once', waves: [{ percent: 100, soakSeconds: 0 }], maxConcurrent: 5, failureThreshold: 0.5, graceSeconds: 0 });
    expect((await agentStep(agentOptionsFor(d))).rebooted).toBe(true);
    expect(fs.existsSync(rebootMarker(d.dir))).toBe(true);
    // The agent is restarted before the machine goes down (a crash, systemd): it waits.
    for (let i = 0; i < 3; i++) expect((await agentStep(agentOptionsFor(d))).rebooted).toBe(false);
    // The machine reboots but the shutdown never finalized the staged deployment: v1 comes back up.
    fs.rmSync(path.join(d.dir, 'run'), { recursive: true, force: true });
    const r = await agentStep(agentOptionsFor(d));
    expect(r.rebooted).toBe(false);
    expect(r.reportsSent).toContain('rolled-back');
    expect(runningCommit(d)).toBe(v1);
    for (let i = 0; i < 2; i++) expect((await agentStep(agentOptionsFor(d))).rebooted).toBe(false);
    expect(rebootsOf(d)).toBe(1);
    const dev = await api<{ state: string }>('GET', `/v1/devices/${d.id}`);
    expect(dev.state).toBe('rolled-back');
  });

  it('a reboot command that fails undoes the record: nothing rebooted, so the update may still reboot once', async () => {
    const [d] = await enrolledDevices('flaky', 1);
    await api('POST', '/v1/rollouts', { releaseId: relV2, group: 'flaky', waves: [{ percent: 100, soakSeconds: 0 }], maxConcurrent: 5, failureThreshold: 0.5, graceSeconds: 0 });
    await expect(agentStep(agentOptionsFor(d, { rebootCommand: ['false'] }))).rejects.toMatchObject({ code: 'COMMAND_FAILED' });
    const s = loadState(d.stateFile);
    expect(s.phase.name).toBe('staged');
    expect(s.rebootedFor).toEqual([]);
    expect(fs.existsSync(rebootMarker(d.dir))).toBe(false);
    expect((await agentStep(agentOptionsFor(d))).rebooted).toBe(true);
    await rebootDevice(d);
    expect((await agentStep(agentOptionsFor(d))).reportsSent).toEqual(expect.arrayContaining(['booted', 'healthy']));
    expect(rebootsOf(d)).toBe(1);
  });
});
