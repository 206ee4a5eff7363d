// The device side: enrollment, "what should I deploy now" and reports. The
// `next` path is the hot one: two indexed reads (the device by token hash,
// the group's newest rollout joined with this device's progress), and a
// write only when the device takes an update slot.

import { sql } from 'kysely';
import { StrataError } from '../errors.js';
import { appendAudit } from './audit.js';
import { writeTx, type DevicesTable, type FleetDb } from './db.js';
import { CLAIM_TIMEOUT_SECONDS, advanceRollout, parseWaves } from './rollouts.js';
import { FINISHED_STATES, bucketOf, nextAction, type MaintenanceWindow, type NoneReason, type RolloutState } from './rollout-policy.js';
import { hashToken, newId, newToken } from './tokens.js';

export interface DeviceAuth {
  id: string;
  group: string;
  bucket: number;
  bootedCommit: string | null;
  overrideCommit: string | null;
}

export async function deviceByToken(fdb: FleetDb, token: string): Promise<DeviceAuth | null> {
  const d = await fdb.db
    .selectFrom('devices')
    .select(['id', 'group_name', 'bucket', 'booted_commit', 'override_commit'])
    .where('token_hash', '=', hashToken(token))
    .executeTakeFirst();
  return d ? { id: d.id, group: d.group_name, bucket: Number(d.bucket), bootedCommit: d.booted_commit, overrideCommit: d.override_commit } : null;
}

export interface EnrollInput {
  enrollmentToken: string;
  name: string;
  machineId?: string;
  labels?: Record<string, string>;
}

export async function enrollDevice(fdb: FleetDb, input: EnrollInput, now: Date): Promise<{ deviceId: string; token: string; group: string }> {
  const at = now.toISOString();
  return writeTx(fdb, async (tx) => {
    const et = await tx.selectFrom('enrollment_tokens').selectAll().where('token_hash', '=', hashToken(input.enrollmentToken)).executeTakeFirst();
    const refuse = (why: string): never => {
      throw new StrataError('FLEET_ENROLLMENT_REFUSED', `enrollment refused: ${why}`);
    };
    if (!et) refuse('unknown enrollment token');
    if (et!.expires_at && et!.expires_at <= at) refuse('the enrollment token expired');
    if (!Number(et!.reusable)) {
      // The conditional update is the guard: of two racing enrollments, one changes the row.
      const res = await tx.updateTable('enrollment_tokens').set({ used_at: at }).where('id', '=', et!.id).where('used_at', 'is', null).executeTakeFirst();
      if (Number(res.numUpdatedRows) !== 1) refuse('this one-time enrollment token was used already');
    }
    const id = newId('dev');
    const token = newToken();
    const labels = { ...(input.labels ?? {}), ...(JSON.parse(et!.labels) as Record<string, string>) };
    await tx
      .insertInto('devices')
      .values({
        id, name: input.name, machine_id: input.machineId ?? null, labels: JSON.stringify(labels), group_name: et!.group_name, token_hash: hashToken(token),
        bucket: bucketOf(id), enrolled_at: at, last_seen: at, state: null, booted_commit: null, booted_version: null, staged_commit: null,
        etc_digest: null, health: null, verify: null, deployments: null, override_commit: null,
      })
      .execute();
    await appendAudit(tx, fdb.dialect, { at, actor: `enrollment-token:${et!.id}`, action: 'device.enroll', subject: `device:${id}`, after: { name: input.name, group: et!.group_name, labels, bootedCommit: null } });
    return { deviceId: id, token, group: et!.group_name };
  });
}

export type NextAnswer =
  | { action: 'none'; reason: NoneReason; pollAfterSeconds: number }
  | { action: 'deploy'; rolloutId: string | null; releaseId: string | null; commit: string; version: string | null; ref: string | null; repoUrl: string | null; allowDowngrade: boolean; pollAfterSeconds: number };

interface RolloutRow {
  id: string;
  release_id: string;
  state: string;
  kind: string;
  current_wave: number;
  waves: string;
  max_concurrent: number;
  window: string | null;
  updated_at: string;
  commit: string;
  version: string;
  ref: string | null;
  dr_state: string | null;
}

export interface NextOptions {
  repoUrl: string | null;
  pollAfterSeconds: number;
  /** How often, at most, a poll re-evaluates an active rollout (waves whose devices are offline, soak ends). */
  evaluateEverySeconds: number;
}

/** The group's newest rollout with its release, and this device's progress in it. */
async function currentRollout(fdb: FleetDb, dev: DeviceAuth): Promise<RolloutRow | undefined> {
  return fdb.db
    .selectFrom('rollouts as r')
    .innerJoin('releases as rel', 'rel.id', 'r.release_id')
    .leftJoin('channels as ch', 'ch.name', 'rel.channel')
    .leftJoin('device_rollouts as dr', (j) => j.onRef('dr.rollout_id', '=', 'r.id').on('dr.device_id', '=', dev.id))
    .select(['r.id', 'r.release_id', 'r.state', 'r.kind', 'r.current_wave', 'r.waves', 'r.max_concurrent', 'r.window', 'r.updated_at', 'rel.commit', 'rel.version', 'ch.ref', 'dr.state as dr_state'])
    .where('r.group_name', '=', dev.group)
    .orderBy('r.serial', 'desc')
    .limit(1)
    .executeTakeFirst();
}

export async function nextForDevice(fdb: FleetDb, dev: DeviceAuth, now: Date, opts: NextOptions): Promise<NextAnswer> {
  let r = await currentRollout(fdb, dev);
  if (r && r.state === 'active') {
    const w = parseWaves(r)[Number(r.current_wave)];
    const soaked = w.completedAt !== null && now.getTime() - Date.parse(w.completedAt) >= w.soakSeconds * 1000;
    const due = opts.evaluateEverySeconds > 0 && now.getTime() - Date.parse(r.updated_at) >= opts.evaluateEverySeconds * 1000;
    if (soaked || due) {
      await advanceRollout(fdb, r.id, now, 'system', { touch: true });
      r = await currentRollout(fdb, dev);
    }
  }
  const facts = {
    now,
    device: { bucket: dev.bucket, bootedCommit: dev.bootedCommit, overrideCommit: dev.overrideCommit },
    rollout: r
      ? {
          state: r.state as RolloutState,
          kind: r.kind as 'forward' | 'rollback',
          currentWave: Number(r.current_wave),
          waves: parseWaves(r),
          maxConcurrent: Number(r.max_concurrent),
          window: r.window ? (JSON.parse(r.window) as MaintenanceWindow) : null,
          commit: r.commit,
        }
      : null,
    deviceState: r?.dr_state ?? null,
    inProgress: 0,
  };
  let decision = nextAction(facts);
  const poll = opts.pollAfterSeconds;
  if (decision.action === 'none') return { action: 'none', reason: decision.reason, pollAfterSeconds: poll };
  if (decision.override) {
    return { action: 'deploy', rolloutId: null, releaseId: null, commit: decision.commit, version: null, ref: null, repoUrl: opts.repoUrl, allowDowngrade: true, pollAfterSeconds: poll };
  }
  if (decision.claim) {
    const rollout = r!;
    const claimed = await writeTx(fdb, async (tx) => {
      // The rollout's row lock serializes claims across server instances.
      let lock = tx.selectFrom('rollouts').select(['state', 'current_wave']).where('id', '=', rollout.id);
      if (fdb.dialect === 'postgres') lock = lock.forUpdate();
      const fresh = await lock.executeTakeFirst();
      if (!fresh || fresh.state !== 'active' || Number(fresh.current_wave) !== Number(rollout.current_wave)) return 'retry' as const;
      const cutoff = new Date(now.getTime() - CLAIM_TIMEOUT_SECONDS * 1000).toISOString();
      const res = await tx
        .selectFrom('device_rollouts')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('rollout_id', '=', rollout.id)
        .where('state', 'not in', FINISHED_STATES as string[])
        .where('updated_at', '>=', cutoff)
        .executeTakeFirst();
      const inProgress = Number(res?.n ?? 0);
      decision = nextAction({ ...facts, inProgress });
      if (decision.action !== 'deploy') return decision.reason;
      const at = now.toISOString();
      await tx
        .insertInto('device_rollouts')
        .values({ device_id: dev.id, rollout_id: rollout.id, state: 'claimed', started_at: at, updated_at: at })
        .onConflict((oc) => oc.columns(['device_id', 'rollout_id']).doUpdateSet({ state: 'claimed', updated_at: at }))
        .execute();
      return 'claimed' as const;
    });
    if (claimed === 'retry') return { action: 'none', reason: 'concurrency', pollAfterSeconds: Math.min(poll, 10) };
    if (claimed !== 'claimed') return { action: 'none', reason: claimed, pollAfterSeconds: poll };
  }
  return {
    action: 'deploy',
    rolloutId: r!.id,
    releaseId: r!.release_id,
    commit: r!.commit,
    version: r!.version,
    ref: r!.ref,
    repoUrl: opts.repoUrl,
    allowDowngrade: decision.action === 'deploy' && decision.allowDowngrade,
    pollAfterSeconds: poll,
  };
}

export const REPORT_STATES = ['checking', 'downloading', 'staged', 'rebooting', 'booted', 'healthy', 'unhealthy', 'rolled-back'] as const;
export type ReportState = (typeof REPORT_STATES)[number];

export interface Deployment {
  index: number;
  commit: string;
  version?: string | null;
  booted?: boolean;
  default?: boolean;
  rollback?: boolean;
  pinned?: boolean;
  staged?: boolean;
  health?: string | null;
}

export interface ReportInput {
  deviceId?: string;
  state: ReportState;
  rolloutId?: string;
  commit?: string;
  details?: string;
  booted?: { commit: string; version?: string | null };
  staged?: { commit: string } | null;
  deployments?: Deployment[];
  etcDigest?: string;
  verify?: { ok: boolean; modified: number; added: number; removed: number; at?: string };
  health?: { ok: boolean; failed: string[]; at?: string };
}

function stateSummary(d: Pick<DevicesTable, 'state' | 'booted_commit' | 'booted_version' | 'staged_commit'>): Record<string, unknown> {
  return { state: d.state, bootedCommit: d.booted_commit, bootedVersion: d.booted_version, stagedCommit: d.staged_commit };
}

export async function reportFromDevice(fdb: FleetDb, dev: DeviceAuth, input: ReportInput, now: Date): Promise<void> {
  if (input.deviceId !== undefined && input.deviceId !== dev.id) {
    throw new StrataError('FLEET_FORBIDDEN', `this device token belongs to ${dev.id}; a device reports only for itself, not for ${input.deviceId}`, { device: dev.id });
  }
  const at = now.toISOString();
  const finishedRollout = await writeTx(fdb, async (tx) => {
    const d = await tx.selectFrom('devices').selectAll().where('id', '=', dev.id).executeTakeFirst();
    if (!d) throw new StrataError('FLEET_UNAUTHORIZED', 'the device was removed');
    const set: Partial<DevicesTable> = { state: input.state, last_seen: at };
    if (input.booted) Object.assign(set, { booted_commit: input.booted.commit, booted_version: input.booted.version ?? null });
    if (input.staged !== undefined) set.staged_commit = input.staged?.commit ?? null;
    if (input.etcDigest !== undefined) set.etc_digest = input.etcDigest;
    if (input.verify) set.verify = JSON.stringify({ ...input.verify, at: input.verify.at ?? at });
    if (input.health) set.health = JSON.stringify({ ...input.health, at: input.health.at ?? at });
    if (input.deployments) set.deployments = JSON.stringify(input.deployments);
    // A one-device rollback is done once the device runs that commit healthily.
    if (d.override_commit && input.state === 'healthy' && (input.booted?.commit ?? d.booted_commit) === d.override_commit) set.override_commit = null;
    await tx.updateTable('devices').set(set).where('id', '=', dev.id).execute();
    let finished: string | null = null;
    if (input.rolloutId) {
      const ro = await tx.selectFrom('rollouts').select(['id', 'group_name']).where('id', '=', input.rolloutId).executeTakeFirst();
      if (!ro || ro.group_name !== d.group_name) throw new StrataError('FLEET_NOT_FOUND', `no rollout '${input.rolloutId}' for this device's group`, { rollout: input.rolloutId });
      if (input.state !== 'checking') {
        await tx
          .insertInto('device_rollouts')
          .values({ device_id: dev.id, rollout_id: ro.id, state: input.state, started_at: at, updated_at: at })
          .onConflict((oc) => oc.columns(['device_id', 'rollout_id']).doUpdateSet({ state: input.state, updated_at: at }))
          .execute();
      }
      if (FINISHED_STATES.includes(input.state)) finished = ro.id;
    }
    const before = stateSummary(d);
    const after = stateSummary({ ...d, ...set });
    if (JSON.stringify(before) !== JSON.stringify(after)) {
      await appendAudit(tx, fdb.dialect, {
        at, actor: `device:${dev.id}`, action: 'device.state', subject: `device:${dev.id}`, before,
        after: { ...after, rolloutId: input.rolloutId ?? null, details: input.details ?? null },
      });
    }
    return finished;
  });
  if (finishedRollout) await advanceRollout(fdb, finishedRollout, now);
}

/** Devices' last-seen times, written behind in one transaction a second rather than on every poll. */
export class LastSeen {
  private pending = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  constructor(private readonly fdb: FleetDb, private readonly intervalMs = 1000) {}

  touch(deviceId: string, at: Date): void {
    this.pending.set(deviceId, at.toISOString());
    if (!this.timer) {
      this.timer = setTimeout(() => void this.flush().catch(() => {}), this.intervalMs);
      this.timer.unref();
    }
  }

  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending.size === 0) return;
    const batch = [...this.pending];
    this.pending.clear();
    await writeTx(this.fdb, async (tx) => {
      for (let i = 0; i < batch.length; i += 500) {
        const part = batch.slice(i, i + 500);
        const cases = sql.join(part.map(([id, at]) => sql`when ${id} then ${at}`), sql` `);
        await sql`update devices set last_seen = case id ${cases} end where id in (${sql.join(part.map(([id]) => sql`${id}`))}) and (last_seen is null or last_seen < case id ${cases} end)`.execute(tx);
      }
    });
  }
}
