// A fleet rollout end to end: the real fleet server (buildApp on 127.0.0.1,
// SQLite and PostgreSQL), a served archive repo with releases v1 and v2,
// and ten devices, each a sysroot driven by the real agent (agentStep, as
// `strata agent run --once` does) and booted through the bootloader model
// with boot counting. v2 ships a required health check that fails on devices
// with a marker in their /var: those fall back to v1. The rollout goes out
// in three waves and pauses when the failures cross the threshold; the
// drift report and the audit log say what happened; tampering with the
// audit table is detected.

import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { buildApp } from '../../src/fleet/app.js';
import type { FleetDb } from '../../src/fleet/db.js';
import { createAdminToken } from '../../src/fleet/tokens.js';
import { bucketOf } from '../../src/fleet/rollout-policy.js';
import { agentEnroll, agentStep } from '../../src/fleet/agent/agent.js';
import { loadState } from '../../src/fleet/agent/state.js';
import { toChecksum } from '../../src/core/objects.js';
import { Repo } from '../../src/repo/repo.js';
import { status } from '../../src/sysroot/status.js';
import { CLI, runAsync, tmpDir } from '../helpers/fixtures.js';
import { STATEROOT } from '../helpers/sysroot.js';
import { FLEET_REF, type SimDevice, agentOptionsFor, makeDevice, makeServedRepo, rebootDevice, rebootsOf, runningCommit } from '../helpers/agent-device.js';
import { DIALECTS, openTestDb } from '../fleet/helpers/fleet.js';

const N = 10;
const CHECK = 'usr/lib/strata/health.d/required.d/50-app';
// The v2 app fails on some hardware: devices whose /var holds this marker.
const appCheck = `#!/bin/sh\nif [ -e "$STRATA_SYSROOT/ostree/deploy/${STATEROOT}/var/lib/app/bad-hardware" ]; then echo "app does not start on this board" >&2; exit 1; fi\nexit 0\n`;

describe.each(DIALECTS)('fleet rollout end to end (%s)', (dialect) => {
  let app: FastifyInstance;
  let fdb: FleetDb;
  let cleanupDb: () => Promise<void>;
  let dbUrl: string;
  let server: string;
  let admin: string;
  const v: Record<'v1' | 'v2', string> = { v1: '', v2: '' };
  const devices: SimDevice[] = [];

  const api = async <T = unknown>(method: string, url: string, body?: unknown): Promise<T> => {
    const res = await fetch(new URL(url, server), { method, headers: { authorization: `Bearer ${admin}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text}`);
    return JSON.parse(text) as T;
  };

  /** Rounds of: every agent steps once, then devices that asked for a reboot boot. Until nothing moves. */
  async function settle(maxRounds = 12): Promise<void> {
    for (let round = 0; round < maxRounds; round++) {
      let moved = false;
      for (const d of devices) {
        const r = await agentStep(agentOptionsFor(d));
        if (r.rebooted) d.needsBoot = true;
        if (r.reportsSent.length || r.rebooted) moved = true;
      }
      for (const d of devices.filter((x) => x.needsBoot)) {
        await rebootDevice(d);
        moved = true;
      }
      if (!moved) return;
    }
  }

  beforeAll(async () => {
    const base = tmpDir('strata-fleet-e2e-');
    // The served repository: v1, then v2 with the app's health check (the same default /etc in both).
    const repoDir = path.join(base, 'repo');
    const sameEtc = { motd: 'welcome\n' };
    [v.v1, v.v2] = await makeServedRepo(repoDir, [{ version: '1.0', etc: sameEtc }, { version: '2.0', etc: sameEtc, files: { [CHECK]: appCheck, 'usr/share/app/VERSION': '2\n' } }]);

    const db = await openTestDb(dialect);
    fdb = db.fdb;
    dbUrl = db.url;
    cleanupDb = db.cleanup;
    // Devices poll as often as they like: the test drives time by rounds.
    app = await buildApp({ db: fdb, repo: repoDir, pollAfterSeconds: 0, evaluateEverySeconds: 0, enrollRateLimit: { max: 1000, timeWindowMs: 60_000 } });
    server = await app.listen({ host: '127.0.0.1', port: 0 });
    admin = (await createAdminToken(fdb, { name: 'e2e', role: 'admin', actor: 'test' })).token;

    await api('POST', '/v1/channels', { name: 'stable', ref: FLEET_REF });
    const rel1 = await api<{ id: string }>('POST', '/v1/releases', { channel: 'stable', commit: v.v1, version: '1.0' });
    await api('POST', '/v1/groups', { name: 'edge', channel: 'stable', releaseId: rel1.id });
    const enrollToken = (await api<{ token: string }>('POST', '/v1/enrollment-tokens', { group: 'edge', reusable: true, labels: { site: 'lyon' } })).token;

    // The factory image: v1 deployed with boot counting, booted, blessed; then enrolled.
    for (let i = 0; i < N; i++) {
      const d = await makeDevice(base, `edge-${i}`, repoDir, v.v1);
      d.id = (await agentEnroll({ server, enrollmentToken: enrollToken, name: d.name, labels: { rack: String(i % 3) }, stateFile: d.stateFile })).deviceId;
      devices.push(d);
    }
    // Order by the server's wave buckets, so the test knows who is in which wave.
    devices.sort((a, b) => bucketOf(a.id) - bucketOf(b.id));
  }, 120_000);

  afterAll(async () => {
    await app?.close();
    await fdb?.close();
    await cleanupDb?.();
  });

  it('waves go out, the rollout pauses at the failure threshold, failed devices are back on v1, drift and audit say so', async () => {
    const at = (i: number) => devices[i];
    // Waves: 3 devices, then 6, then all 10. Two wave-2 devices have the bad board; one wave-1
    // device has a local /etc change (carried through the /etc merge), another gets tampered with.
    const pct = (i: number) => (bucketOf(at(i).id) + 1) / 100;
    const waves = [{ percent: pct(2), soakSeconds: 0 }, { percent: pct(5), soakSeconds: 0 }, { percent: 100, soakSeconds: 0 }];
    const bad = [at(3), at(4)];
    for (const d of bad) {
      fs.mkdirSync(path.join(d.dir, 'ostree/deploy', STATEROOT, 'var/lib/app'), { recursive: true });
      fs.writeFileSync(path.join(d.dir, 'ostree/deploy', STATEROOT, 'var/lib/app/bad-hardware'), 'rev B\n');
    }
    fs.writeFileSync(path.join(at(0).booted, 'etc/app/app.conf'), 'level=9\n');

    // Before any rollout, every agent says what it runs (checking): no drift at all, except the edited /etc.
    await settle();
    let drift = await api<{ deviceId: string; reasons: { kind: string }[] }[]>('GET', '/v1/drift');
    expect(drift.map((x) => [x.deviceId, x.reasons.map((r) => r.kind)])).toEqual([[at(0).id, ['etc']]]);

    const rel2 = await api<{ id: string }>('POST', '/v1/releases', { channel: 'stable', commit: v.v2, version: '2.0' });
    const rollout = await api<{ id: string }>('POST', '/v1/rollouts', { releaseId: rel2.id, group: 'edge', waves, maxConcurrent: 10, failureThreshold: 0.25, graceSeconds: 0 });

    // Wave 1: the tampered device gets a modified binary after its boot into v2, before it reports.
    const tampered = at(1);
    for (let round = 0; round < 12; round++) {
      for (const d of devices) {
        const r = await agentStep(agentOptionsFor(d));
        if (r.rebooted) d.needsBoot = true;
      }
      for (const d of devices.filter((x) => x.needsBoot)) {
        await rebootDevice(d);
        if (d === tampered && status({ sysroot: d.dir, booted: d.booted }).deployments.find((x) => x.booted)?.version === '2.0') {
          const f = path.join(d.booted, 'usr/bin/hello');
          fs.rmSync(f);
          fs.writeFileSync(f, '#!/bin/sh\necho pwned\n', { mode: 0o755 });
        }
      }
      const ro = await api<{ state: string }>('GET', `/v1/rollouts/${rollout.id}`);
      if (ro.state !== 'active' && devices.every((d) => !d.needsBoot)) break;
    }
    await settle();

    const ro = await api<{ state: string; pausedReason: string | null; currentWave: number; failureHistory: { rate: number }[] }>('GET', `/v1/rollouts/${rollout.id}`);
    if (process.env.E2E_DEBUG) {
      console.log(JSON.stringify(ro, null, 1));
      console.log(JSON.stringify((await api<{ id: string; state: string; booted: { commit: string } }[]>('GET', '/v1/devices?group=edge')).map((x) => [devices.findIndex((d) => d.id === x.id), x.state, x.booted.commit?.slice(0, 6)])));
      for (const d of devices) console.log(d.name, JSON.stringify(loadState(d.stateFile).phase).slice(0, 100), rebootsOf(d));
    }
    expect(ro.state).toBe('paused');
    expect(ro.currentWave).toBe(1);
    expect(ro.pausedReason).toMatch(/threshold/);

    // What each device runs, seen on the device itself.
    const runs = runningCommit;
    const healthy = [at(0), at(1), at(2), at(5)];
    const untouched = devices.slice(6);
    for (const d of healthy) expect(runs(d), d.name).toBe(v.v2);
    for (const d of bad) {
      expect(runs(d), d.name).toBe(v.v1);
      const st = status({ sysroot: d.dir, booted: d.booted });
      expect(st.deployments.find((x) => x.checksum === v.v2)).toMatchObject({ bad: true });
    }
    for (const d of untouched) {
      expect(runs(d), d.name).toBe(v.v1);
      expect(Repo.open(path.join(d.dir, 'ostree/repo')).hasObject(toChecksum(v.v2), 'commit')).toBe(false);
    }
    // One reboot per update, none for devices the rollout did not reach.
    for (const d of [...healthy, ...bad]) expect(rebootsOf(d), d.name).toBe(1);
    for (const d of untouched) expect(rebootsOf(d), d.name).toBe(0);
    for (const d of devices) expect(loadState(d.stateFile).phase.name, d.name).toBe('idle');
    // The /etc edit made it through the merge into v2.
    expect(fs.readFileSync(path.join(at(0).booted, 'etc/app/app.conf'), 'utf8')).toBe('level=9\n');

    // The server's view agrees, device by device.
    const list = await api<{ id: string; state: string; booted: { commit: string | null } }[]>('GET', '/v1/devices?group=edge');
    const byId = new Map(list.map((x) => [x.id, x]));
    for (const d of healthy) expect(byId.get(d.id), d.name).toMatchObject({ state: 'healthy', booted: { commit: v.v2 }, health: { ok: true } });
    for (const d of bad) expect(byId.get(d.id), d.name).toMatchObject({ state: 'rolled-back', booted: { commit: v.v1 } });
    for (const d of untouched) expect(byId.get(d.id), d.name).toMatchObject({ state: 'checking', booted: { commit: v.v1 } });

    // Drift: exactly the two failed devices (v1 where v2 is due), the edited /etc and the tampered binary.
    drift = await api('GET', '/v1/drift');
    const found = Object.fromEntries(drift.map((x) => [x.deviceId, x.reasons]));
    expect(Object.keys(found).sort()).toEqual([at(0).id, at(1).id, at(3).id, at(4).id].sort());
    for (const d of bad) expect(found[d.id]).toEqual([{ kind: 'commit', expected: v.v2, actual: v.v1 }]);
    expect(found[at(0).id]).toEqual([expect.objectContaining({ kind: 'etc' })]);
    expect(found[at(1).id]).toEqual([{ kind: 'tampered', expected: 'no changes', actual: '1 modified, 0 added, 0 removed' }]);

    // The audit log tells each failed device's story, and the pause.
    for (const d of bad) {
      const entries = await api<{ action: string; after: { state?: string; bootedCommit?: string; details?: string | null } | null }[]>('GET', `/v1/audit?device=${d.id}&limit=200`);
      const states = entries.filter((e) => e.action === 'device.state').map((e) => e.after?.state);
      expect(states, d.name).toEqual(expect.arrayContaining(['downloading', 'staged', 'rebooting', 'booted', 'unhealthy', 'rolled-back']));
      const last = entries.filter((e) => e.action === 'device.state' && e.after?.state === 'rolled-back').at(-1);
      expect(last?.after).toMatchObject({ bootedCommit: v.v1 });
      expect(last?.after?.details).toMatch(/50-app/);
    }
    const pauses = await api<{ action: string; subject: string }[]>('GET', '/v1/audit?action=rollout.auto-pause');
    expect(pauses.map((e) => e.subject)).toEqual([`rollout:${rollout.id}`]);

    // The audit chain verifies, and stops verifying once a row is edited in the database.
    expect(await api('GET', '/v1/audit/verify')).toMatchObject({ ok: true });
    const victim = await fdb.db.selectFrom('audit_log').select(['seq']).where('action', '=', 'device.state').orderBy('seq').limit(1).executeTakeFirstOrThrow();
    await sql`update audit_log set actor = ${'device:someone-else'} where seq = ${victim.seq}`.execute(fdb.db);
    expect(await api('GET', '/v1/audit/verify')).toMatchObject({ ok: false, firstBad: { seq: Number(victim.seq) } });
    const cli = await runAsync(process.execPath, [CLI, 'fleet', 'audit', 'verify', '--db', dbUrl]);
    expect(cli.status).toBe(1);
    expect(cli.stderr).toContain(`audit log broken at entry ${Number(victim.seq)}`);
  }, 120_000);
});
