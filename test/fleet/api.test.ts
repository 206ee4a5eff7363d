// The fleet API and its rollout behaviour, once per database dialect.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { bucketOf, inWave } from '../../src/fleet/rollout-policy.js';
import { Repo } from '../../src/repo/repo.js';
import { DIALECTS, commitOf, makeFleet, type TestFleet } from './helpers/fleet.js';

const C1 = commitOf(1);
const C2 = commitOf(2);

interface Dev {
  deviceId: string;
  token: string;
}

async function enrollToken(f: TestFleet, group: string, reusable = true): Promise<string> {
  const r = await f.req('POST', '/v1/enrollment-tokens', f.admin, { group, reusable });
  expect(r.statusCode, r.body).toBe(201);
  return r.json().token;
}

async function enroll(f: TestFleet, group: string, n: number): Promise<Dev[]> {
  const et = await enrollToken(f, group);
  const out: Dev[] = [];
  for (let i = 0; i < n; i++) {
    const r = await f.app.inject({ method: 'POST', url: '/v1/enroll', payload: { enrollmentToken: et, name: `${group}-${i}` }, remoteAddress: `10.0.${Math.floor(i / 200)}.${i % 200}` });
    expect(r.statusCode, r.body).toBe(201);
    out.push(r.json());
  }
  return out;
}

async function release(f: TestFleet, commit: string, version: string): Promise<string> {
  const ch = await f.req('GET', '/v1/channels', f.viewer);
  if (!ch.json().some((c: { name: string }) => c.name === 'stable')) {
    expect((await f.req('POST', '/v1/channels', f.admin, { name: 'stable', ref: 'os/x86_64/stable' })).statusCode).toBe(201);
  }
  const r = await f.req('POST', '/v1/releases', f.admin, { channel: 'stable', commit, version });
  expect(r.statusCode, r.body).toBe(201);
  return r.json().id;
}

async function rollout(f: TestFleet, body: Record<string, unknown>): Promise<{ id: string; state: string }> {
  const r = await f.req('POST', '/v1/rollouts', f.admin, body);
  expect(r.statusCode, r.body).toBe(201);
  return r.json();
}

const next = async (f: TestFleet, d: Dev) => (await f.req('GET', '/v1/device/next', d.token)).json();
const report = async (f: TestFleet, d: Dev, body: Record<string, unknown>) => f.req('POST', '/v1/device/report', d.token, body);

/** Deploy the answer of `next` and report healthy on it. */
async function updateHealthy(f: TestFleet, d: Dev): Promise<void> {
  const n = await next(f, d);
  expect(n.action, JSON.stringify(n)).toBe('deploy');
  const r = await report(f, d, { state: 'healthy', rolloutId: n.rolloutId ?? undefined, booted: { commit: n.commit, version: n.version } });
  expect(r.statusCode, r.body).toBe(200);
}

/** A group that completed a rollout of C1 (so it has a release to roll back to). */
async function groupOnC1(f: TestFleet, group: string, n: number): Promise<Dev[]> {
  const devs = await enroll(f, group, n);
  const rel1 = await release(f, C1, '1.0');
  const ro = await rollout(f, { releaseId: rel1, group, waves: [{ percent: 100, soakSeconds: 0 }], maxConcurrent: 1000 });
  for (const d of devs) await updateHealthy(f, d);
  const state = (await f.req('GET', `/v1/rollouts/${ro.id}`, f.viewer)).json().state;
  expect(state).toBe('completed');
  return devs;
}

describe.each(DIALECTS)('fleet API (%s)', (dialect) => {
  let f: TestFleet;
  afterEach(async () => {
    await f?.close();
  });

  describe('enrollment and device API', () => {
    it('enrolls once with a one-time token and refuses it the second time', async () => {
      f = await makeFleet(dialect);
      const et = await enrollToken(f, 'edge', false);
      const a = await f.req('POST', '/v1/enroll', null, { enrollmentToken: et, name: 'd1', labels: { site: 'lyon' } });
      expect(a.statusCode).toBe(201);
      expect(a.json()).toMatchObject({ group: 'edge' });
      const b = await f.req('POST', '/v1/enroll', null, { enrollmentToken: et, name: 'd2' });
      expect(b.statusCode).toBe(403);
      expect(b.json().error.code).toBe('FLEET_ENROLLMENT_REFUSED');
      const c = await f.req('POST', '/v1/enroll', null, { enrollmentToken: 'x'.repeat(43), name: 'd3' });
      expect(c.json().error.code).toBe('FLEET_ENROLLMENT_REFUSED');
    });

    it('rate-limits enrollment per address', async () => {
      f = await makeFleet(dialect, { enrollRateLimit: { max: 3, timeWindowMs: 60_000 } });
      const et = await enrollToken(f, 'edge');
      const codes: number[] = [];
      for (let i = 0; i < 5; i++) codes.push((await f.req('POST', '/v1/enroll', null, { enrollmentToken: et, name: `d${i}` })).statusCode);
      expect(codes).toEqual([201, 201, 201, 429, 429]);
      const r = await f.req('POST', '/v1/enroll', null, { enrollmentToken: et, name: 'dx' });
      expect(r.json().error.code).toBe('FLEET_RATE_LIMITED');
    });

    it('answers next and takes reports; a device cannot report for another', async () => {
      f = await makeFleet(dialect);
      const [a, b] = await enroll(f, 'edge', 2);
      expect(await next(f, a)).toEqual({ action: 'none', reason: 'no-rollout', pollAfterSeconds: 60 });
      const r = await report(f, a, { state: 'booted', booted: { commit: C1, version: '1.0' }, etcDigest: 'e'.repeat(64), deployments: [{ index: 0, commit: C1, booted: true }] });
      expect(r.statusCode, r.body).toBe(200);
      const detail = (await f.req('GET', `/v1/devices/${a.deviceId}`, f.viewer)).json();
      expect(detail).toMatchObject({ id: a.deviceId, state: 'booted', booted: { commit: C1, version: '1.0' }, etcDigest: 'e'.repeat(64) });
      expect(detail.history[0]).toMatchObject({ action: 'device.state', actor: `device:${a.deviceId}` });
      const forged = await report(f, a, { deviceId: b.deviceId, state: 'healthy' });
      expect(forged.statusCode).toBe(403);
      expect(forged.json().error.code).toBe('FLEET_FORBIDDEN');
      const own = await report(f, a, { deviceId: a.deviceId, state: 'healthy' });
      expect(own.statusCode).toBe(200);
      expect((await f.req('GET', '/v1/device/next', null)).json().error.code).toBe('FLEET_UNAUTHORIZED');
      expect((await f.req('GET', '/v1/device/next', 'y'.repeat(43))).statusCode).toBe(401);
      // A device token is no admin token.
      expect((await f.req('GET', '/v1/devices', a.token)).statusCode).toBe(401);
    });

    it('lets viewers read and not write', async () => {
      f = await makeFleet(dialect);
      expect((await f.req('GET', '/v1/channels', f.viewer)).statusCode).toBe(200);
      const w = await f.req('POST', '/v1/channels', f.viewer, { name: 'stable', ref: 'os/x86_64/stable' });
      expect(w.statusCode).toBe(403);
      expect(w.json().error.code).toBe('FLEET_FORBIDDEN');
      expect((await f.req('POST', '/v1/tokens', f.viewer, { name: 'x', role: 'admin' })).statusCode).toBe(403);
      const t = await f.req('POST', '/v1/tokens', f.admin, { name: 'ci', role: 'viewer' });
      expect(t.statusCode).toBe(201);
      expect((await f.req('GET', '/v1/devices', t.json().token)).statusCode).toBe(200);
    });

    it('filters devices by label, state and group', async () => {
      f = await makeFleet(dialect);
      const et = await enrollToken(f, 'edge');
      for (const [name, site] of [['a', 'lyon'], ['b', 'paris'], ['c', 'lyon']]) {
        expect((await f.req('POST', '/v1/enroll', null, { enrollmentToken: et, name, labels: { site } })).statusCode).toBe(201);
      }
      const lyon = (await f.req('GET', '/v1/devices?label=site=lyon', f.viewer)).json();
      expect(lyon.map((d: { name: string }) => d.name)).toEqual(['a', 'c']);
      expect((await f.req('GET', '/v1/devices?group=edge&state=healthy', f.viewer)).json()).toEqual([]);
      expect((await f.req('GET', '/v1/devices?label=nonsense', f.viewer)).json().error.code).toBe('FLEET_BAD_REQUEST');
    });
  });

  describe('rollouts', () => {
    it('moves wave by wave: only wave members first, the rest after the soak', async () => {
      f = await makeFleet(dialect);
      const devs = await enroll(f, 'edge', 40);
      const rel = await release(f, C1, '1.0');
      const ro = await rollout(f, { releaseId: rel, group: 'edge', waves: [{ percent: 25, soakSeconds: 600 }, { percent: 100, soakSeconds: 0 }], maxConcurrent: 100 });
      const first = devs.filter((d) => inWave(bucketOf(d.deviceId), 25));
      const rest = devs.filter((d) => !inWave(bucketOf(d.deviceId), 25));
      expect(first.length).toBeGreaterThan(0);
      for (const d of rest) expect(await next(f, d)).toMatchObject({ action: 'none', reason: 'not-in-wave' });
      for (const d of first) await updateHealthy(f, d);
      let view = (await f.req('GET', `/v1/rollouts/${ro.id}`, f.viewer)).json();
      expect(view).toMatchObject({ state: 'active', currentWave: 0 });
      expect(view.waves[0]).toMatchObject({ devices: first.length, healthy: first.length, updated: first.length });
      expect(view.waves[0].completedAt).not.toBeNull();
      f.clock.advance(599);
      expect(await next(f, rest[0])).toMatchObject({ reason: 'not-in-wave' });
      f.clock.advance(1);
      expect(await next(f, rest[0])).toMatchObject({ action: 'deploy', commit: C1, ref: 'os/x86_64/stable', repoUrl: 'http://cdn.example/repo' });
      view = (await f.req('GET', `/v1/rollouts/${ro.id}`, f.viewer)).json();
      expect(view.currentWave).toBe(1);
      for (const d of rest) await updateHealthy(f, d);
      view = (await f.req('GET', `/v1/rollouts/${ro.id}`, f.viewer)).json();
      expect(view.state).toBe('completed');
      expect(await next(f, rest[1])).toMatchObject({ action: 'none', reason: 'up-to-date' });
      // A device enrolled after the rollout completed still gets the group's commit.
      const [late] = await enroll(f, 'edge', 1);
      expect(await next(f, late)).toMatchObject({ action: 'deploy', commit: C1, rolloutId: ro.id });
      const audit = (await f.req('GET', '/v1/audit?action=rollout.wave', f.viewer)).json();
      expect(audit).toHaveLength(1);
    });

    it('moves past a wave nobody reports in (empty or offline) through polls, every evaluateEverySeconds', async () => {
      f = await makeFleet(dialect, { evaluateEverySeconds: 30 });
      const devs = await enroll(f, 'edge', 5);
      const rel = await release(f, C1, '1.0');
      const ro = await rollout(f, { releaseId: rel, group: 'edge', waves: [{ percent: 1, soakSeconds: 60 }, { percent: 100, soakSeconds: 0 }], maxConcurrent: 100 });
      const first = devs.filter((d) => inWave(bucketOf(d.deviceId), 1));
      for (const d of first) await updateHealthy(f, d);
      const later = devs.filter((d) => !inWave(bucketOf(d.deviceId), 1));
      expect(await next(f, later[0])).toMatchObject({ reason: 'not-in-wave' });
      f.clock.advance(30); // a poll evaluates: the wave is complete, its soak starts
      expect(await next(f, later[0])).toMatchObject({ reason: 'not-in-wave' });
      expect((await f.req('GET', `/v1/rollouts/${ro.id}`, f.viewer)).json().waves[0].completedAt).not.toBeNull();
      f.clock.advance(60);
      expect(await next(f, later[0])).toMatchObject({ action: 'deploy' });
    });

    it('waits for the maintenance window', async () => {
      f = await makeFleet(dialect);
      const [d] = await enroll(f, 'edge', 1);
      const rel = await release(f, C1, '1.0');
      // The clock is Monday 2026-03-02 10:00 UTC = 11:00 in Paris.
      await rollout(f, { releaseId: rel, group: 'edge', waves: [{ percent: 100, soakSeconds: 0 }], window: { days: ['mon', 'tue'], start: '02:00', end: '04:00', timeZone: 'Europe/Paris' } });
      expect(await next(f, d)).toMatchObject({ action: 'none', reason: 'outside-window' });
      f.clock.set('2026-03-03T01:30:00.000Z'); // Tuesday 02:30 in Paris
      expect(await next(f, d)).toMatchObject({ action: 'deploy' });
      const bad = await f.req('POST', '/v1/rollouts', f.admin, { releaseId: rel, group: 'edge', window: { days: ['mon'], start: '2:00', end: '04:00', timeZone: 'Mars/Olympus' } });
      expect(bad.statusCode).toBe(400);
      expect(bad.json().error.code).toBe('FLEET_BAD_REQUEST');
    });

    it('holds at most maxConcurrent devices updating at once', async () => {
      f = await makeFleet(dialect);
      const devs = await enroll(f, 'edge', 8);
      const rel = await release(f, C1, '1.0');
      const ro = await rollout(f, { releaseId: rel, group: 'edge', waves: [{ percent: 100, soakSeconds: 0 }], maxConcurrent: 3 });
      const answers = [];
      for (const d of devs) answers.push(await next(f, d));
      expect(answers.filter((a) => a.action === 'deploy')).toHaveLength(3);
      expect(answers.filter((a) => a.reason === 'concurrency')).toHaveLength(5);
      // Asking again keeps the slot; a report of healthy frees it for someone else.
      const holder = devs[answers.findIndex((a) => a.action === 'deploy')];
      expect(await next(f, holder)).toMatchObject({ action: 'deploy' });
      await report(f, holder, { state: 'downloading', rolloutId: ro.id });
      const waiting = devs[answers.findIndex((a) => a.reason === 'concurrency')];
      expect(await next(f, waiting)).toMatchObject({ reason: 'concurrency' });
      await report(f, holder, { state: 'healthy', rolloutId: ro.id, booted: { commit: C1 } });
      expect(await next(f, waiting)).toMatchObject({ action: 'deploy' });
    });

    it('keeps maxConcurrent across two server instances on one database, under concurrent polls', async () => {
      f = await makeFleet(dialect);
      const devs = await enroll(f, 'edge', 16);
      const rel = await release(f, C1, '1.0');
      await rollout(f, { releaseId: rel, group: 'edge', waves: [{ percent: 100, soakSeconds: 0 }], maxConcurrent: 3 });
      const { buildApp } = await import('../../src/fleet/app.js');
      const { openDb } = await import('../../src/fleet/db.js');
      // SQLite: a second connection in this same thread would wait on the
      // first one's lock while blocking the thread that must release it, so
      // the second "instance" shares the connection (one process, one writer;
      // separate processes serialize on BEGIN IMMEDIATE). PostgreSQL: a real
      // second pool, as a second server would have.
      const fdb2 = dialect === 'postgres' ? await openDb(f.url) : f.fdb;
      const second = await buildApp({ db: fdb2, now: f.clock.now, evaluateEverySeconds: 0 });
      try {
        const answers = await Promise.all(
          devs.map((d, i) => (i % 2 ? second : f.app).inject({ method: 'GET', url: '/v1/device/next', headers: { authorization: `Bearer ${d.token}` } }).then((r) => r.json())),
        );
        expect(answers.filter((a) => a.action === 'deploy')).toHaveLength(3);
        expect(answers.filter((a) => a.reason === 'concurrency')).toHaveLength(13);
      } finally {
        await second.close();
        if (fdb2 !== f.fdb) await fdb2.close();
      }
    });

    it('answers each of many concurrent polls for its own device (PostgreSQL batches them into one query)', async () => {
      f = await makeFleet(dialect);
      const edge = await enroll(f, 'edge', 6);
      const lab = await enroll(f, 'lab', 6);
      const rel = await release(f, C1, '1.0');
      await rollout(f, { releaseId: rel, group: 'edge', waves: [{ percent: 100, soakSeconds: 0 }], maxConcurrent: 100 });
      const tokens = [...edge, ...lab, edge[0]].map((d) => d.token).concat(['not-a-device-token']);
      const answers = await Promise.all(
        tokens.map((t) => f.app.inject({ method: 'GET', url: '/v1/device/next', headers: { authorization: `Bearer ${t}` } }).then((r) => ({ status: r.statusCode, body: r.json() }))),
      );
      for (const a of answers.slice(0, 6)) expect(a).toMatchObject({ status: 200, body: { action: 'deploy', commit: C1 } });
      for (const a of answers.slice(6, 12)) expect(a).toMatchObject({ status: 200, body: { action: 'none', reason: 'no-rollout' } });
      expect(answers[12]).toMatchObject({ status: 200, body: { action: 'deploy', commit: C1 } });
      expect(answers[13].status).toBe(401);
    });

    it('pauses itself when failures cross the threshold, and says why; resume and abort', async () => {
      f = await makeFleet(dialect);
      const devs = await enroll(f, 'edge', 20);
      const rel = await release(f, C1, '1.0');
      const ro = await rollout(f, { releaseId: rel, group: 'edge', waves: [{ percent: 100, soakSeconds: 0 }], maxConcurrent: 100, failureThreshold: 0.1 });
      for (const d of devs) expect(await next(f, d)).toMatchObject({ action: 'deploy' });
      for (const d of devs.slice(0, 2)) await report(f, d, { state: 'unhealthy', rolloutId: ro.id, health: { ok: false, failed: ['network'] } });
      expect((await f.req('GET', `/v1/rollouts/${ro.id}`, f.viewer)).json().state).toBe('active'); // 10% is not above 10%
      await report(f, devs[2], { state: 'rolled-back', rolloutId: ro.id, details: 'boot counter ran out' });
      const view = (await f.req('GET', `/v1/rollouts/${ro.id}`, f.viewer)).json();
      expect(view.state).toBe('paused');
      expect(view.pausedReason).toMatch(/15% in wave 1 \(3 of 20 devices/);
      expect(view.failureHistory.length).toBeGreaterThan(0);
      expect(await next(f, devs[10])).toMatchObject({ action: 'none', reason: 'paused' });
      expect(await next(f, devs[0])).toMatchObject({ action: 'none', reason: 'held' });
      const pauses = (await f.req('GET', '/v1/audit?action=rollout.auto-pause', f.viewer)).json();
      expect(pauses[0]).toMatchObject({ actor: 'system', after: { state: 'paused' } });
      // Resume: the failures seen are accepted; the rollout goes on.
      const resumed = await f.req('POST', `/v1/rollouts/${ro.id}/resume`, f.admin, {});
      expect(resumed.statusCode, resumed.body).toBe(200);
      expect(resumed.json()).toMatchObject({ state: 'active', pausedReason: null });
      expect(await next(f, devs[10])).toMatchObject({ action: 'deploy' });
      expect((await f.req('POST', `/v1/rollouts/${ro.id}/resume`, f.admin, {})).json().error.code).toBe('FLEET_CONFLICT');
      expect((await f.req('POST', `/v1/rollouts/${ro.id}/pause`, f.admin, { reason: 'look at logs' })).json()).toMatchObject({ state: 'paused', pausedReason: 'look at logs' });
      expect((await f.req('POST', `/v1/rollouts/${ro.id}/abort`, f.admin, {})).json().state).toBe('aborted');
      expect(await next(f, devs[11])).toMatchObject({ action: 'none', reason: 'no-rollout' });
    });

    it('rolls the group back to the previous release with allowDowngrade', async () => {
      f = await makeFleet(dialect);
      const devs = await groupOnC1(f, 'edge', 4);
      const rel2 = await release(f, C2, '2.0');
      const ro = await rollout(f, { releaseId: rel2, group: 'edge', waves: [{ percent: 100, soakSeconds: 0 }], maxConcurrent: 10 });
      await updateHealthy(f, devs[0]);
      await updateHealthy(f, devs[1]);
      expect((await f.req('POST', '/v1/rollouts', f.admin, { releaseId: rel2, group: 'edge' })).json().error.code).toBe('FLEET_CONFLICT');
      const rb = await f.req('POST', `/v1/rollouts/${ro.id}/rollback`, f.admin, {});
      expect(rb.statusCode, rb.body).toBe(200);
      expect(rb.json()).toMatchObject({ kind: 'rollback', commit: C1, state: 'active' });
      expect((await f.req('GET', `/v1/rollouts/${ro.id}`, f.viewer)).json().state).toBe('rolled-back');
      expect(await next(f, devs[0])).toMatchObject({ action: 'deploy', commit: C1, allowDowngrade: true });
      expect(await next(f, devs[2])).toMatchObject({ action: 'none', reason: 'up-to-date' });
      expect((await f.req('POST', `/v1/rollouts/${ro.id}/rollback`, f.admin, {})).statusCode).toBe(409);
    });

    it('sends one device back to its previous deployment', async () => {
      f = await makeFleet(dialect);
      const [d] = await enroll(f, 'edge', 1);
      await report(f, d, { state: 'healthy', booted: { commit: C2 }, deployments: [{ index: 0, commit: C2, booted: true }, { index: 1, commit: C1, rollback: true }] });
      const r = await f.req('POST', `/v1/devices/${d.deviceId}/rollback`, f.admin);
      expect(r.json()).toEqual({ commit: C1 });
      expect(await next(f, d)).toMatchObject({ action: 'deploy', commit: C1, allowDowngrade: true, rolloutId: null });
      await report(f, d, { state: 'healthy', booted: { commit: C1 } });
      expect(await next(f, d)).toMatchObject({ action: 'none', reason: 'no-rollout' });
    });
  });

  describe('drift', () => {
    it('names devices on the wrong commit (after the grace), with another /etc, or tampered', async () => {
      f = await makeFleet(dialect);
      const devs = await groupOnC1(f, 'edge', 5);
      const etc = 'e'.repeat(64);
      for (const d of devs.slice(0, 4)) await report(f, d, { state: 'healthy', etcDigest: etc, verify: { ok: true, modified: 0, added: 0, removed: 0 } });
      await report(f, devs[4], { state: 'healthy', etcDigest: 'f'.repeat(64) });
      await report(f, devs[1], { state: 'healthy', booted: { commit: C2 } });
      await report(f, devs[2], { state: 'healthy', verify: { ok: false, modified: 2, added: 1, removed: 0 } });
      const drift = (await f.req('GET', '/v1/drift', f.viewer)).json();
      const byId = Object.fromEntries(drift.map((x: { deviceId: string; reasons: unknown[] }) => [x.deviceId, x.reasons]));
      expect(Object.keys(byId).sort()).toEqual([devs[1], devs[2], devs[4]].map((d) => d.deviceId).sort());
      expect(byId[devs[1].deviceId]).toEqual([{ kind: 'commit', expected: C1, actual: C2 }]);
      expect(byId[devs[2].deviceId]).toEqual([{ kind: 'tampered', expected: 'no changes', actual: '2 modified, 1 added, 0 removed' }]);
      expect(byId[devs[4].deviceId]).toEqual([{ kind: 'etc', expected: etc, actual: 'f'.repeat(64) }]);
      // An admin-set digest wins over the majority.
      await f.req('PATCH', '/v1/groups/edge', f.admin, { expectedEtcDigest: 'f'.repeat(64) });
      const drift2 = (await f.req('GET', '/v1/drift', f.viewer)).json();
      expect(drift2.filter((x: { reasons: { kind: string }[] }) => x.reasons.some((r) => r.kind === 'etc'))).toHaveLength(4);
      // A new rollout: devices not yet updated drift only once the grace has passed.
      await f.req('PATCH', '/v1/groups/edge', f.admin, { expectedEtcDigest: null });
      const rel2 = await release(f, C2, '2.0');
      await rollout(f, { releaseId: rel2, group: 'edge', waves: [{ percent: 100, soakSeconds: 0 }], graceSeconds: 3600 });
      const commitDrift = async () => (await f.req('GET', '/v1/drift', f.viewer)).json().filter((x: { reasons: { kind: string }[] }) => x.reasons.some((r) => r.kind === 'commit')).length;
      expect(await commitDrift()).toBe(0);
      f.clock.advance(3600);
      expect(await commitDrift()).toBe(4); // all but devs[1], already on C2
      const ov = (await f.req('GET', '/v1/overview', f.viewer)).json();
      expect(ov).toMatchObject({ devices: 5, healthy: 5 });
      expect(ov.drifting).toBeGreaterThanOrEqual(4);
    });
  });

  describe('audit log', () => {
    it('verifies, then names the first entry edited or removed in the database', async () => {
      f = await makeFleet(dialect);
      const [d] = await enroll(f, 'edge', 1);
      await report(f, d, { state: 'booted', booted: { commit: C1 } });
      await report(f, d, { state: 'healthy' });
      let v = (await f.req('GET', '/v1/audit/verify', f.viewer)).json();
      expect(v).toMatchObject({ ok: true });
      const n = v.entries;
      expect(n).toBeGreaterThanOrEqual(5);
      const entries = (await f.req('GET', '/v1/audit?limit=2', f.viewer)).json();
      expect(entries[0].prevHash).toBe(entries[1].hash);
      await sql`update audit_log set actor = ${'mallory'} where seq = 3`.execute(f.fdb.db);
      v = (await f.req('GET', '/v1/audit/verify', f.viewer)).json();
      expect(v).toMatchObject({ ok: false, firstBad: { seq: 3 } });
      expect(v.firstBad.reason).toMatch(/altered/);
    });

    it('notices a removed entry, in the middle or at the end', async () => {
      f = await makeFleet(dialect);
      await enroll(f, 'edge', 3);
      await sql`delete from audit_log where seq = 2`.execute(f.fdb.db);
      expect((await f.req('GET', '/v1/audit/verify', f.viewer)).json()).toMatchObject({ ok: false, firstBad: { seq: 2 } });
      const max = Number((await sql<{ m: number }>`select max(seq) as m from audit_log`.execute(f.fdb.db)).rows[0].m);
      await sql`delete from audit_log where seq >= 2`.execute(f.fdb.db);
      const v = (await f.req('GET', '/v1/audit/verify', f.viewer)).json();
      expect(v).toMatchObject({ ok: false, entries: 1, firstBad: { seq: 2 } });
      expect(max).toBeGreaterThan(2);
    });

    it('tells what commit a device ran at a time', async () => {
      f = await makeFleet(dialect);
      const [d] = await enroll(f, 'edge', 1);
      const t0 = f.clock.now().toISOString();
      f.clock.advance(60);
      await report(f, d, { state: 'booted', booted: { commit: C1, version: '1.0' } });
      const t1 = f.clock.now().toISOString();
      f.clock.advance(60);
      await report(f, d, { state: 'healthy' });
      f.clock.advance(3600);
      await report(f, d, { state: 'booted', booted: { commit: C2, version: '2.0' } });
      const t2 = f.clock.now().toISOString();
      const at = async (time: string) => (await f.req('GET', `/v1/audit/at?device=${d.deviceId}&time=${encodeURIComponent(time)}`, f.viewer)).json();
      expect(await at(t0)).toEqual({ commit: null, version: null, since: t0 });
      expect(await at(new Date(Date.parse(t1) + 1800_000).toISOString())).toEqual({ commit: C1, version: '1.0', since: t1 });
      expect(await at(t2)).toEqual({ commit: C2, version: '2.0', since: t2 });
      expect((await f.req('GET', `/v1/audit/at?device=dev_nope&time=${encodeURIComponent(t2)}`, f.viewer)).json().error.code).toBe('FLEET_NOT_FOUND');
      expect((await f.req('GET', `/v1/audit/at?device=${d.deviceId}&time=yesterday`, f.viewer)).json().error.code).toBe('FLEET_BAD_REQUEST');
    });
  });

  describe('FleetLock', () => {
    const lock = (f: TestFleet, op: 'pre-reboot' | 'steady-state', id: string, headers: Record<string, string> = { 'fleet-lock-protocol': 'true' }) =>
      f.app.inject({ method: 'POST', url: `/v1/${op}`, headers, payload: { client_params: { id, group: 'edge' } } });

    it('hands out the group\'s slots with owned, recursive locks', async () => {
      f = await makeFleet(dialect);
      const [a, b] = await enroll(f, 'edge', 2);
      expect((await lock(f, 'pre-reboot', a.deviceId)).statusCode).toBe(200);
      expect((await lock(f, 'pre-reboot', a.deviceId)).statusCode).toBe(200); // recursive
      const busy = await lock(f, 'pre-reboot', b.deviceId);
      expect(busy.statusCode).toBe(409);
      expect(busy.json()).toMatchObject({ kind: 'failed_lock' });
      expect((await lock(f, 'steady-state', b.deviceId)).statusCode).toBe(200); // not held: fine, a no-op
      expect((await f.req('GET', '/v1/fleetlock', f.viewer)).json()).toMatchObject([{ group: 'edge', holder: a.deviceId }]);
      expect((await lock(f, 'steady-state', a.deviceId)).statusCode).toBe(200);
      expect((await lock(f, 'pre-reboot', b.deviceId)).statusCode).toBe(200);
      expect((await lock(f, 'pre-reboot', a.deviceId, {})).json()).toMatchObject({ kind: 'missing_header' });
      expect((await lock(f, 'pre-reboot', 'nobody')).statusCode).toBe(404);
    });

    it('gives a group with an active rollout maxConcurrent slots', async () => {
      f = await makeFleet(dialect);
      const devs = await enroll(f, 'edge', 3);
      const rel = await release(f, C1, '1.0');
      await rollout(f, { releaseId: rel, group: 'edge', waves: [{ percent: 100, soakSeconds: 0 }], maxConcurrent: 2 });
      const codes = [];
      for (const d of devs) codes.push((await lock(f, 'pre-reboot', d.deviceId)).statusCode);
      expect(codes).toEqual([200, 200, 409]);
    });
  });

  describe('documents and errors', () => {
    it('serves openapi.json and Prometheus metrics', async () => {
      f = await makeFleet(dialect);
      await enroll(f, 'edge', 2);
      const o = await f.req('GET', '/openapi.json');
      expect(o.statusCode).toBe(200);
      expect(Object.keys(o.json().paths)).toEqual(expect.arrayContaining(['/v1/device/next', '/v1/device/report', '/v1/enroll', '/v1/rollouts', '/v1/drift', '/v1/audit/verify']));
      expect((await f.req('GET', '/metrics')).statusCode).toBe(401);
      const m = await f.req('GET', '/metrics', f.viewer);
      expect(m.headers['content-type']).toMatch(/^text\/plain/);
      expect(m.body).toMatch(/^strata_fleet_http_requests_total\{method="POST",route="\/v1\/enroll",status="201"\} 2$/m);
      expect(m.body).toMatch(/^strata_fleet_devices\{state="unknown"\} 2$/m);
      expect(m.body).toMatch(/# TYPE strata_fleet_rollouts gauge/);
    });

    it('answers bad input with a JSON error and a stable code', async () => {
      f = await makeFleet(dialect);
      const [d] = await enroll(f, 'edge', 1);
      const cases = [
        await f.req('POST', '/v1/enroll', null, { enrollmentToken: 'short', name: 'x' }),
        await f.req('POST', '/v1/enroll', null, { enrollmentToken: 'x'.repeat(43), name: 'n'.repeat(65) }),
        await report(f, d, { state: 'exploded' }),
        await report(f, d, { state: 'booted', booted: { commit: 'XYZ' } }),
        await report(f, d, { state: 'booted', details: 'x'.repeat(5000) }),
        await f.app.inject({ method: 'POST', url: '/v1/device/report', headers: { authorization: `Bearer ${d.token}`, 'content-type': 'application/json' }, payload: '{not json' }),
        await f.req('POST', '/v1/rollouts', f.admin, { releaseId: 'rel_x', group: 'edge', waves: [{ percent: 50, soakSeconds: 0 }] }),
      ];
      for (const r of cases) {
        expect(r.statusCode, r.body).toBe(400);
        expect(r.json().error.code).toBe('FLEET_BAD_REQUEST');
        expect(r.json().error.message).not.toMatch(/\n/);
      }
      const nf = await f.req('GET', '/v1/nothing-here', f.admin);
      expect(nf.statusCode).toBe(404);
      expect(nf.json().error.code).toBe('FLEET_NOT_FOUND');
      expect((await f.req('GET', '/v1/rollouts/ro_missing', f.admin)).json().error.code).toBe('FLEET_NOT_FOUND');
      expect((await f.req('POST', '/v1/rollouts', f.admin, { releaseId: 'rel_missing', group: 'edge' })).json().error.code).toBe('FLEET_NOT_FOUND');
    });
  });

  describe('the dashboard API', () => {
    it('needs an admin or viewer token for whoami and the repository API; a device token is refused', async () => {
      const repoDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-fleet-repo-'));
      try {
        Repo.init(repoDir, 'archive');
        f = await makeFleet(dialect, { repo: repoDir, repoUrl: undefined });
        const [d] = await enroll(f, 'edge', 1);
        for (const url of ['/v1/whoami', '/v1/repo/refs', '/v1/repo/info']) {
          for (const token of [null, d.token, 'z'.repeat(43)]) {
            const r = await f.req('GET', url, token);
            expect(r.statusCode, `${url} ${token}`).toBe(401);
            expect(r.json().error.code).toBe('FLEET_UNAUTHORIZED');
          }
        }
        expect((await f.req('GET', '/v1/whoami', f.viewer)).json()).toEqual({ name: 'watcher', role: 'viewer' });
        expect((await f.req('GET', '/v1/whoami', f.admin)).json()).toEqual({ name: 'root', role: 'admin' });
        const refs = await f.req('GET', '/v1/repo/refs', f.viewer);
        expect(refs.statusCode).toBe(200);
        expect(refs.json()).toEqual([]);
        const missing = await f.req('GET', `/v1/repo/diff?from=${C1}&to=${C2}`, f.viewer);
        expect(missing.statusCode).toBe(404);
        expect(missing.json().error.code).toBe('OBJECT_MISSING');
        const bad = await f.req('GET', '/v1/repo/diff?from=a', f.viewer);
        expect(bad.statusCode).toBe(400);
        expect(bad.json().error.code).toBe('USAGE');
      } finally {
        fs.rmSync(repoDir, { recursive: true, force: true });
      }
    });
  });

  describe('over a real socket', () => {
    it('serves the device API and the repository under /repo/', async () => {
      const repoDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-fleet-repo-'));
      try {
        Repo.init(repoDir, 'archive');
        f = await makeFleet(dialect, { repo: repoDir, repoUrl: undefined });
        const [d] = await enroll(f, 'edge', 1);
        const rel = await release(f, C1, '1.0');
        await rollout(f, { releaseId: rel, group: 'edge', waves: [{ percent: 100, soakSeconds: 0 }] });
        const base = await f.app.listen({ port: 0, host: '127.0.0.1' });
        const n = await (await fetch(`${base}/v1/device/next`, { headers: { authorization: `Bearer ${d.token}` } })).json();
        expect(n).toMatchObject({ action: 'deploy', repoUrl: `${base}/repo` });
        const cfg = await fetch(`${base}/repo/config`);
        expect(cfg.status).toBe(200);
        expect(await cfg.text()).toMatch(/mode=archive/);
        expect((await fetch(`${base}/repo/%2e%2e/etc/passwd`)).status).toBe(404);
        const ranged = await fetch(`${base}/repo/config`, { headers: { range: 'bytes=0-4' } });
        expect(ranged.status).toBe(206);
        expect((await ranged.text()).length).toBe(5);
      } finally {
        fs.rmSync(repoDir, { recursive: true, force: true });
      }
    });
  });
});
