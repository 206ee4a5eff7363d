// The device side: enrollment, "what should I deploy now" and reports. The
// `next` path is the hot one: two indexed reads (the device by token hash,
// the group's newest rollout joined with this device's progress), and a
// write only when the device takes an update slot.

import { StrataError } from '../errors.js';
import { appendAudit } from './audit.js';
import { sql, type CompiledQuery } from 'kysely';
import { writeTx, type DevicesTable, type FleetDb } from './db.js';
import { CLAIM_TIMEOUT_SECONDS, advanceRollout } from './rollouts.js';
import { FINISHED_STATES, bucketOf, nextAction, type MaintenanceWindow, type NoneReason, type RolloutState, type WaveState } from './rollout-policy.js';
import { hashToken, newId, newToken } from './tokens.js';

export interface DeviceAuth {
  id: string;
  group: string;
  bucket: number;
  bootedCommit: string | null;
  overrideCommit: string | null;
}

// The queries every poll runs are built and compiled once per database, then
// run with new parameters: no query building on the hot path, and one SQL
// text per query, which the driver keeps prepared (see db.ts).
const SLOT = '\u0000';
const slot = (name: string): string => SLOT + name;

type DeviceRow = { id: string; group_name: string; bucket: number; booted_commit: string | null; override_commit: string | null };
type PollRow = DeviceRow & Partial<Omit<RolloutRow, 'id'>> & { r_id: string | null };

interface HotQueries {
  byToken: CompiledQuery<DeviceRow>;
  /** The device, its group's newest rollout with release and channel, and its progress in it: one round trip per poll. */
  poll: CompiledQuery<PollRow>;
  /** The same for many token hashes at once (PostgreSQL: polls that arrive together share one round trip). */
  pollMany: CompiledQuery<PollRow & { token_hash: string }>;
  rollout: CompiledQuery<Omit<RolloutRow, 'dr_state'>>;
  progress: CompiledQuery<{ state: string }>;
}

// The poll's select list and joins, shared by the one-device and the batched form.
const POLL_COLUMNS = sql.raw(`select d.id, d.group_name, d.bucket, d.booted_commit, d.override_commit,
        r.id as r_id, r.release_id, r.state, r.kind, r.current_wave, r.waves, r.max_concurrent, r."window", r.updated_at,
        rel."commit", rel.version, ch.ref,
        -- A scalar subquery on the full primary key: a join let PostgreSQL
        -- pick the (rollout, state) index and filter a whole rollout's rows.
        (select dr.state from device_rollouts dr where dr.device_id = d.id and dr.rollout_id = r.id) as dr_state`);
const POLL_FROM = sql.raw(`from devices d
      left join rollouts r on r.id = (select r2.id from rollouts r2 where r2.group_name = d.group_name order by r2.serial desc limit 1)
      left join releases rel on rel.id = r.release_id
      left join channels ch on ch.name = rel.channel`);

const HOT = new WeakMap<FleetDb, HotQueries>();

function hot(fdb: FleetDb): HotQueries {
  let q = HOT.get(fdb);
  if (q) return q;
  q = {
    byToken: fdb.db.selectFrom('devices').select(['id', 'group_name', 'bucket', 'booted_commit', 'override_commit']).where('token_hash', '=', slot('hash')).compile(),
    rollout: fdb.db
      .selectFrom('rollouts as r')
      .innerJoin('releases as rel', 'rel.id', 'r.release_id')
      .leftJoin('channels as ch', 'ch.name', 'rel.channel')
      .select(['r.id', 'r.release_id', 'r.state', 'r.kind', 'r.current_wave', 'r.waves', 'r.max_concurrent', 'r.window', 'r.updated_at', 'rel.commit', 'rel.version', 'ch.ref'])
      .where('r.group_name', '=', slot('group'))
      .orderBy('r.serial', 'desc')
      // A literal: SQLite runs this query three times slower with a bound LIMIT.
      .limit(sql.lit(1))
      .compile(),
    progress: fdb.db.selectFrom('device_rollouts').select('state').where('device_id', '=', slot('device')).where('rollout_id', '=', slot('rollout')).compile(),
    poll: sql<PollRow>`${POLL_COLUMNS} ${POLL_FROM} where d.token_hash = ${slot('hash')}`.compile(fdb.db),
    pollMany: sql<PollRow & { token_hash: string }>`${POLL_COLUMNS}, d.token_hash ${POLL_FROM} where d.token_hash = any(${slot('hashes')})`.compile(fdb.db),
  };
  HOT.set(fdb, q);
  return q;
}

async function runHot<R>(fdb: FleetDb, q: CompiledQuery<R>, values: Record<string, unknown>): Promise<R | undefined> {
  const parameters = q.parameters.map((p) => (typeof p === 'string' && p.startsWith(SLOT) ? values[p.slice(1)] : p));
  if (fdb.readPrepared) return (await fdb.readPrepared<R>(q.sql, parameters))[0];
  return (await fdb.db.executeQuery<R>({ ...q, parameters })).rows[0];
}

// On PostgreSQL a round trip costs about as much as the rest of a poll, so
// the polls that arrive in one turn of the event loop share one query (at
// most POLL_BATCH token hashes). Nothing is kept once the batch is answered.
const POLL_BATCH = 256;
interface WaitingPoll {
  hash: string;
  resolve: (row: PollRow | undefined) => void;
  reject: (err: unknown) => void;
}
const waitingPolls = new WeakMap<FleetDb, WaitingPoll[]>();

function pollRow(fdb: FleetDb, hash: string): Promise<PollRow | undefined> {
  if (!fdb.readPrepared || fdb.dialect !== 'postgres') return runHot(fdb, hot(fdb).poll, { hash });
  let batch = waitingPolls.get(fdb);
  if (!batch || batch.length >= POLL_BATCH) {
    batch = [];
    waitingPolls.set(fdb, batch);
    const mine = batch;
    setImmediate(() => {
      if (waitingPolls.get(fdb) === mine) waitingPolls.delete(fdb);
      void answerPolls(fdb, mine);
    });
  }
  return new Promise((resolve, reject) => batch!.push({ hash, resolve, reject }));
}

async function answerPolls(fdb: FleetDb, batch: WaitingPoll[]): Promise<void> {
  try {
    const q = hot(fdb).pollMany;
    const hashes = [...new Set(batch.map((p) => p.hash))];
    const parameters = q.parameters.map((p) => (p === slot('hashes') ? hashes : p));
    const rows = await fdb.readPrepared!<PollRow & { token_hash: string }>(q.sql, parameters);
    const byHash = new Map(rows.map((r) => [r.token_hash, r]));
    for (const p of batch) p.resolve(byHash.get(p.hash));
  } catch (err) {
    for (const p of batch) p.reject(err);
  }
}

/** The device a token names and what its poll needs, in one query; null for an unknown token. */
export async function pollFacts(fdb: FleetDb, token: string): Promise<{ dev: DeviceAuth; rollout: RolloutRow | null } | null> {
  const row = await pollRow(fdb, hashToken(token));
  if (!row) return null;
  const dev = { id: row.id, group: row.group_name, bucket: Number(row.bucket), bootedCommit: row.booted_commit, overrideCommit: row.override_commit };
  if (!row.r_id) return { dev, rollout: null };
  const r = row as unknown as RolloutRow & { r_id: string };
  return { dev, rollout: { ...r, id: r.r_id } };
}

export async function deviceByToken(fdb: FleetDb, token: string): Promise<DeviceAuth | null> {
  const d = await runHot(fdb, hot(fdb).byToken, { hash: hashToken(token) });
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

export interface RolloutRow {
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

/** The group's newest rollout with its release, and (unless the device already runs it) this device's progress in it. */
async function currentRollout(fdb: FleetDb, dev: DeviceAuth): Promise<RolloutRow | undefined> {
  const r = await runHot(fdb, hot(fdb).rollout, { group: dev.group });
  if (!r) return undefined;
  // Separate lookups are cheaper than one join here (SQLite plans the join poorly).
  const progress = dev.bootedCommit === r.commit ? undefined : await runHot(fdb, hot(fdb).progress, { device: dev.id, rollout: r.id });
  return { ...r, dr_state: progress?.state ?? null };
}

// Parsed JSON columns of rollouts, by text: the same few rows are read by every poll.
const parsed = new Map<string, unknown>();
function parseCached<T>(text: string): T {
  let v = parsed.get(text);
  if (v === undefined) {
    v = JSON.parse(text);
    if (parsed.size >= 256) parsed.clear();
    parsed.set(text, v);
  }
  return v as T;
}

const evaluating = new WeakMap<FleetDb, Set<string>>();

/** `loaded`: the rollout row pollFacts() already read (undefined: read it here). */
export async function nextForDevice(fdb: FleetDb, dev: DeviceAuth, now: Date, opts: NextOptions, loaded?: RolloutRow | null): Promise<NextAnswer> {
  let r = loaded === undefined ? await currentRollout(fdb, dev) : (loaded ?? undefined);
  if (r && r.state === 'active') {
    const w = parseCached<WaveState[]>(r.waves)[Number(r.current_wave)];
    const soaked = w.completedAt !== null && now.getTime() - Date.parse(w.completedAt) >= w.soakSeconds * 1000;
    const due = opts.evaluateEverySeconds > 0 && now.getTime() - Date.parse(r.updated_at) >= opts.evaluateEverySeconds * 1000;
    const busy = evaluating.get(fdb) ?? new Set<string>();
    evaluating.set(fdb, busy);
    // One evaluation at a time per rollout and instance; concurrent polls go on with what they read.
    if ((soaked || due) && !busy.has(r.id)) {
      busy.add(r.id);
      try {
        await advanceRollout(fdb, r.id, now, 'system', { touch: true, unlessEvaluatedWithinMs: soaked ? 0 : opts.evaluateEverySeconds * 1000 });
      } finally {
        busy.delete(r.id);
      }
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
          waves: parseCached<WaveState[]>(r.waves),
          maxConcurrent: Number(r.max_concurrent),
          window: r.window ? parseCached<MaintenanceWindow>(r.window) : null,
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
      let lock = tx.selectFrom('rollouts').select(['state']).where('id', '=', rollout.id);
      if (fdb.dialect === 'postgres') lock = lock.forUpdate();
      const fresh = await lock.executeTakeFirst();
      // Changed since the read: paused or ended. (A wave change needs no
      // check: waves only grow, so the device is still in.)
      if (!fresh || fresh.state === 'paused') return 'paused' as const;
      if (fresh.state !== 'active' && fresh.state !== 'completed') return 'no-rollout' as const;
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
  /** device id → epoch milliseconds (a number: no date formatting per poll) */
  private pending = new Map<string, number>();
  private newest = 0;
  private timer: NodeJS.Timeout | null = null;
  constructor(private readonly fdb: FleetDb, private readonly intervalMs = 1000) {}

  touch(deviceId: string, at: Date): void {
    const t = at.getTime();
    this.pending.set(deviceId, t);
    if (t > this.newest) this.newest = t;
    if (!this.timer) {
      this.timer = setTimeout(() => void this.flush().catch(() => {}), this.intervalMs);
      this.timer.unref();
    }
  }

  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending.size === 0) return;
    // One timestamp for the batch (the newest): last-seen is accurate to the
    // flush interval, and each chunk is a single indexed UPDATE.
    const ids = [...this.pending.keys()];
    const at = new Date(this.newest).toISOString();
    this.pending.clear();
    await writeTx(this.fdb, async (tx) => {
      for (let i = 0; i < ids.length; i += 500) {
        await tx.updateTable('devices').set({ last_seen: at }).where('id', 'in', ids.slice(i, i + 500)).where((eb) => eb.or([eb('last_seen', 'is', null), eb('last_seen', '<', at)])).execute();
      }
    });
  }
}
