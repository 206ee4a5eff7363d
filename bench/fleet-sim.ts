// Fleet workloads shared by the benchmark and the tests: bulk enrollment
// straight into the database, and a rollout simulation in which every device
// polls, deploys and reports through the server's own functions, with a
// seeded share of devices failing their health checks.

import { createHash, randomBytes } from 'node:crypto';
import { writeTx, type FleetDb } from '../src/fleet/db.js';
import { nextForDevice, reportFromDevice, type DeviceAuth } from '../src/fleet/devices.js';
import { bucketOf } from '../src/fleet/rollout-policy.js';
import { createRollout, getRollout, type RolloutView } from '../src/fleet/rollouts.js';

export const SIM_C1 = '1'.repeat(64);
export const SIM_C2 = '2'.repeat(64);

/** A small fast PRNG (mulberry32), so a seed replays the same run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface BulkDevice extends DeviceAuth {
  token: string;
}

/** Inserts `n` enrolled devices of one group, booted on `commit`, in chunks inside one transaction. */
export async function bulkEnroll(fdb: FleetDb, opts: { n: number; group: string; commit: string; now: Date; prefix?: string }): Promise<BulkDevice[]> {
  const at = opts.now.toISOString();
  const devices: BulkDevice[] = [];
  const prefix = opts.prefix ?? 'dev_sim';
  for (let i = 0; i < opts.n; i++) {
    const id = `${prefix}${String(i).padStart(7, '0')}`;
    devices.push({ id, group: opts.group, bucket: bucketOf(id), bootedCommit: opts.commit, overrideCommit: null, token: randomBytes(32).toString('base64url') });
  }
  await writeTx(fdb, async (tx) => {
    const g = await tx.selectFrom('groups').select('name').where('name', '=', opts.group).executeTakeFirst();
    if (!g) await tx.insertInto('groups').values({ name: opts.group, channel: null, expected_etc_digest: null, release_id: null, created_at: at }).execute();
    const CHUNK = 400;
    for (let i = 0; i < devices.length; i += CHUNK) {
      await tx
        .insertInto('devices')
        .values(
          devices.slice(i, i + CHUNK).map((d) => ({
            id: d.id, name: d.id, machine_id: null, labels: '{}', group_name: opts.group, token_hash: createHash('sha256').update(d.token).digest('hex'),
            bucket: d.bucket, enrolled_at: at, last_seen: at, state: 'healthy', booted_commit: opts.commit, booted_version: '1.0', staged_commit: null,
            etc_digest: null, health: null, verify: null, deployments: null, override_commit: null,
          })),
        )
        .execute();
    }
  });
  return devices;
}

/** A channel and two releases (C1 then C2); the group's current release is C1. */
export async function simReleases(fdb: FleetDb, group: string, now: Date): Promise<{ rel1: string; rel2: string }> {
  const at = now.toISOString();
  await writeTx(fdb, async (tx) => {
    await tx.insertInto('channels').values({ name: 'sim', ref: 'os/x86_64/sim', created_at: at }).onConflict((oc) => oc.column('name').doNothing()).execute();
    await tx.insertInto('releases').values({ id: `rel_${group}1`, channel: 'sim', commit: SIM_C1, version: '1.0', notes: '', created_at: at }).execute();
    await tx.insertInto('releases').values({ id: `rel_${group}2`, channel: 'sim', commit: SIM_C2, version: '2.0', notes: '', created_at: at }).execute();
    await tx.updateTable('groups').set({ release_id: `rel_${group}1` }).where('name', '=', group).execute();
  });
  return { rel1: `rel_${group}1`, rel2: `rel_${group}2` };
}

export interface SimResult {
  devices: number;
  failureShare: number;
  failedDevices: number;
  ticks: number;
  polls: number;
  reports: number;
  simulatedSeconds: number;
  wallSeconds: number;
  rollout: Pick<RolloutView, 'state' | 'pausedReason' | 'currentWave'> & { waves: { percent: number; devices: number; healthy: number; failed: number; completedAt: string | null }[] };
  /** Whether the rollout paused before its second wave completed (the simulation's claim). */
  pausedBeforeSecondWaveCompleted: boolean;
}

/**
 * Rolls C2 out to `devices` devices in waves of 1/10/50/100% with a soak
 * each; `failureShare` of them (chosen by the seed) report unhealthy. Time
 * moves in ticks of `tickSeconds`; each tick every device not yet done polls,
 * and deploys and reports at once when told to.
 */
export async function simulateRollout(
  fdb: FleetDb,
  opts: { devices: number; failureShare: number; seed: number; threshold?: number; maxConcurrent?: number; soakSeconds?: number; tickSeconds?: number; maxTicks?: number },
): Promise<SimResult> {
  const started = Date.now();
  let now = new Date('2026-03-02T00:00:00.000Z');
  const rand = prng(opts.seed);
  const group = `sim${opts.seed}`;
  const devs = await bulkEnroll(fdb, { n: opts.devices, group, commit: SIM_C1, now, prefix: `dev_s${opts.seed}x` });
  const failing = new Set(devs.filter(() => rand() < opts.failureShare).map((d) => d.id));
  const { rel2 } = await simReleases(fdb, group, now);
  const soak = opts.soakSeconds ?? 1800;
  const id = await createRollout(
    fdb,
    {
      releaseId: rel2, group, waves: [1, 10, 50, 100].map((percent) => ({ percent, soakSeconds: soak })),
      maxConcurrent: opts.maxConcurrent ?? 1000, window: null, failureThreshold: opts.threshold ?? 0.02, graceSeconds: 3600,
    },
    'sim', now,
  );
  const pending = new Set(devs);
  let polls = 0;
  let reports = 0;
  let ticks = 0;
  const tick = opts.tickSeconds ?? 600;
  const nextOpts = { repoUrl: null, pollAfterSeconds: tick, evaluateEverySeconds: tick };
  for (; ticks < (opts.maxTicks ?? 200); ticks++) {
    let acted = false;
    for (const d of pending) {
      const answer = await nextForDevice(fdb, d, now, nextOpts);
      polls++;
      if (answer.action !== 'deploy') continue;
      acted = true;
      const fails = failing.has(d.id);
      await reportFromDevice(fdb, d, { state: 'staged', rolloutId: answer.rolloutId!, staged: { commit: answer.commit } }, now);
      if (fails) {
        await reportFromDevice(fdb, d, { state: 'rolled-back', rolloutId: answer.rolloutId!, details: 'health check failed: boot counter ran out', health: { ok: false, failed: ['sim'] } }, now);
      } else {
        d.bootedCommit = answer.commit;
        await reportFromDevice(fdb, d, { state: 'healthy', rolloutId: answer.rolloutId!, booted: { commit: answer.commit, version: answer.version } }, now);
      }
      reports += 2;
      pending.delete(d);
    }
    const r = await getRollout(fdb, id, now);
    if (r.state !== 'active' || (pending.size === 0 && !acted)) break;
    now = new Date(now.getTime() + tick * 1000);
  }
  const r = await getRollout(fdb, id, now);
  return {
    devices: opts.devices,
    failureShare: opts.failureShare,
    failedDevices: failing.size,
    ticks,
    polls,
    reports,
    simulatedSeconds: ticks * tick,
    wallSeconds: Math.round((Date.now() - started) / 100) / 10,
    rollout: {
      state: r.state,
      pausedReason: r.pausedReason,
      currentWave: r.currentWave,
      waves: r.waves.map((w) => ({ percent: w.percent, devices: w.devices, healthy: w.healthy, failed: w.failed, completedAt: w.completedAt })),
    },
    pausedBeforeSecondWaveCompleted: r.state === 'paused' && r.currentWave <= 1 && r.waves[1].completedAt === null,
  };
}
