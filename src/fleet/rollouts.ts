// Rollouts in the database: creation, the admin actions (pause, resume,
// abort, rollback) and advancement. Every change runs in one write
// transaction holding the rollout's row lock (PostgreSQL) or the database
// write lock (SQLite), so server instances never disagree about a wave.

import { sql } from 'kysely';
import { StrataError } from '../errors.js';
import { appendAudit } from './audit.js';
import { writeTx, type FleetDb, type RolloutsTable, type Tx } from './db.js';
import {
  FAILED_STATES, FINISHED_STATES, evaluateRollout, waveBound,
  type MaintenanceWindow, type RolloutState, type WaveState, type WaveStats,
} from './rollout-policy.js';
import { newId } from './tokens.js';

/** A device silent for this long no longer holds up its wave. */
export const OFFLINE_AFTER_SECONDS = 24 * 3600;
/** An update slot claimed and not reported on for this long is free again. */
export const CLAIM_TIMEOUT_SECONDS = 3600;

export interface RolloutSpec {
  releaseId: string;
  group: string;
  waves: { percent: number; soakSeconds: number }[];
  maxConcurrent: number;
  window?: MaintenanceWindow | null;
  failureThreshold: number;
  graceSeconds: number;
}

export interface WaveView {
  percent: number;
  soakSeconds: number;
  startedAt: string | null;
  completedAt: string | null;
  devices: number;
  updated: number;
  healthy: number;
  failed: number;
}

export interface RolloutView {
  id: string;
  releaseId: string;
  commit: string;
  version: string;
  group: string;
  kind: 'forward' | 'rollback';
  state: RolloutState;
  pausedReason: string | null;
  currentWave: number;
  waves: WaveView[];
  maxConcurrent: number;
  window: MaintenanceWindow | null;
  failureThreshold: number;
  graceSeconds: number;
  previousReleaseId: string | null;
  failureHistory: { at: string; wave: number; rate: number }[];
  createdAt: string;
  updatedAt: string;
}

export function parseWaves(r: Pick<RolloutsTable, 'waves'>): WaveState[] {
  return JSON.parse(r.waves) as WaveState[];
}

async function lockRollout(tx: Tx, fdb: FleetDb, id: string): Promise<RolloutsTable> {
  let q = tx.selectFrom('rollouts').selectAll().where('id', '=', id);
  if (fdb.dialect === 'postgres') q = q.forUpdate();
  const r = await q.executeTakeFirst();
  if (!r) throw new StrataError('FLEET_NOT_FOUND', `no rollout '${id}'`, { rollout: id });
  return { ...r, serial: Number(r.serial), current_wave: Number(r.current_wave), max_concurrent: Number(r.max_concurrent), failure_threshold: Number(r.failure_threshold), grace_seconds: Number(r.grace_seconds) };
}

/** The current wave's figures: devices in it (seen lately), finished, failed. */
export async function waveStats(tx: Tx, r: { id: string; group_name: string }, commit: string, percent: number, now: Date): Promise<WaveStats & { healthy: number; updated: number }> {
  const cutoff = new Date(now.getTime() - OFFLINE_AFTER_SECONDS * 1000).toISOString();
  const fin = sql.join(FINISHED_STATES.map((s) => sql`${s}`));
  const bad = sql.join(FAILED_STATES.map((s) => sql`${s}`));
  const res = await sql<{ n: string | number; finished: string | number | null; failed: string | number | null; healthy: string | number | null; updated: string | number | null }>`
    select count(*) as n,
      sum(case when dr.state in (${fin}) or d.booted_commit = ${commit} then 1 else 0 end) as finished,
      sum(case when dr.state in (${bad}) then 1 else 0 end) as failed,
      sum(case when dr.state = 'healthy' then 1 else 0 end) as healthy,
      sum(case when d.booted_commit = ${commit} then 1 else 0 end) as updated
    from devices d left join device_rollouts dr on dr.device_id = d.id and dr.rollout_id = ${r.id}
    where d.group_name = ${r.group_name} and d.bucket < ${waveBound(percent)} and d.last_seen >= ${cutoff}`.execute(tx);
  const row = res.rows[0];
  return { devicesInWave: Number(row.n), finished: Number(row.finished ?? 0), failed: Number(row.failed ?? 0), healthy: Number(row.healthy ?? 0), updated: Number(row.updated ?? 0) };
}

async function releaseOf(tx: Tx, id: string): Promise<{ id: string; commit: string; version: string; channel: string }> {
  const rel = await tx.selectFrom('releases').select(['id', 'commit', 'version', 'channel']).where('id', '=', id).executeTakeFirst();
  if (!rel) throw new StrataError('FLEET_NOT_FOUND', `no release '${id}'`, { release: id });
  return rel;
}

/**
 * Re-evaluates an active rollout until it stops changing: pause on failures,
 * complete waves, move past soaked ones. Returns the new state.
 */
export async function advanceRollout(fdb: FleetDb, id: string, now: Date, actor = 'system', opts: { touch?: boolean } = {}): Promise<RolloutState> {
  return writeTx(fdb, (tx) => advanceIn(tx, fdb, id, now, actor, opts.touch ?? false));
}

/** `touch`: record the evaluation time even when nothing changed (polls evaluate at most every few seconds). */
async function advanceIn(tx: Tx, fdb: FleetDb, id: string, now: Date, actor: string, touch: boolean): Promise<RolloutState> {
  const r = await lockRollout(tx, fdb, id);
  if (r.state !== 'active') return r.state as RolloutState;
  const rel = await releaseOf(tx, r.release_id);
  let waves = parseWaves(r);
  let currentWave = r.current_wave;
  let state: RolloutState = 'active';
  let pausedReason: string | null = null;
  const history = JSON.parse(r.failure_history) as { at: string; wave: number; rate: number }[];
  let changed = false;
  for (let step = 0; step <= waves.length; step++) {
    const stats = await waveStats(tx, r, rel.commit, waves[currentWave].percent, now);
    const res = evaluateRollout({ state, currentWave, waves, failureThreshold: r.failure_threshold }, stats, now);
    const last = history.at(-1);
    if (stats.failed > 0 && (!last || last.wave !== currentWave || last.rate !== res.failureRate) && history.length < 1000) {
      history.push({ at: now.toISOString(), wave: currentWave, rate: Math.round(res.failureRate * 10000) / 10000 });
      changed = true;
    }
    if (!res.changed) break;
    changed = true;
    const before: { state: RolloutState; currentWave: number } = { state, currentWave };
    ({ waves, currentWave, state, pausedReason } = res);
    if (state !== before.state || currentWave !== before.currentWave) {
      const action = state === 'paused' ? 'rollout.auto-pause' : state === 'completed' ? 'rollout.complete' : 'rollout.wave';
      await appendAudit(tx, fdb.dialect, { at: now.toISOString(), actor, action, subject: `rollout:${id}`, before, after: { state, currentWave, pausedReason } });
    }
    if (state === 'completed') {
      await tx.updateTable('groups').set({ release_id: r.release_id }).where('name', '=', r.group_name).execute();
    }
    if (state !== 'active' || currentWave === before.currentWave) break;
  }
  if (changed || touch) {
    await tx
      .updateTable('rollouts')
      .set({ state, paused_reason: pausedReason, current_wave: currentWave, waves: JSON.stringify(waves), failure_history: JSON.stringify(history), updated_at: now.toISOString() })
      .where('id', '=', id)
      .execute();
  }
  return state;
}

function checkSpec(spec: RolloutSpec): void {
  const bad = (msg: string, field: string): never => {
    throw new StrataError('FLEET_BAD_REQUEST', msg, { field });
  };
  if (spec.waves.length === 0) bad('a rollout needs at least one wave', 'waves');
  let prev = 0;
  for (const w of spec.waves) {
    if (!(w.percent > prev)) bad(`wave percentages must rise (got ${w.percent} after ${prev})`, 'waves');
    prev = w.percent;
  }
  if (prev !== 100) bad(`the last wave must reach 100 percent (got ${prev})`, 'waves');
}

export async function createRollout(fdb: FleetDb, spec: RolloutSpec, actor: string, now: Date, kind: 'forward' | 'rollback' = 'forward'): Promise<string> {
  checkSpec(spec);
  const id = newId('ro');
  const at = now.toISOString();
  await writeTx(fdb, async (tx) => {
    const rel = await releaseOf(tx, spec.releaseId);
    const group = await tx.selectFrom('groups').selectAll().where('name', '=', spec.group).executeTakeFirst();
    if (!group) throw new StrataError('FLEET_NOT_FOUND', `no group '${spec.group}'`, { group: spec.group });
    const running = await tx.selectFrom('rollouts').select('id').where('group_name', '=', spec.group).where('state', 'in', ['active', 'paused']).executeTakeFirst();
    if (running) throw new StrataError('FLEET_CONFLICT', `group '${spec.group}' already has rollout ${running.id} in progress; abort or finish it first`, { rollout: running.id });
    const max = await tx.selectFrom('rollouts').select((eb) => eb.fn.max('serial').as('m')).executeTakeFirst();
    const waves: WaveState[] = spec.waves.map((w, i) => ({ percent: w.percent, soakSeconds: w.soakSeconds, startedAt: i === 0 ? at : null, completedAt: null, acknowledgedFailures: 0 }));
    await tx
      .insertInto('rollouts')
      .values({
        id,
        serial: Number(max?.m ?? 0) + 1,
        release_id: rel.id,
        group_name: spec.group,
        previous_release_id: group.release_id,
        kind,
        waves: JSON.stringify(waves),
        max_concurrent: spec.maxConcurrent,
        window: spec.window ? JSON.stringify(spec.window) : null,
        failure_threshold: spec.failureThreshold,
        grace_seconds: spec.graceSeconds,
        state: 'active',
        paused_reason: null,
        current_wave: 0,
        failure_history: '[]',
        created_at: at,
        updated_at: at,
      })
      .execute();
    await appendAudit(tx, fdb.dialect, { at, actor, action: kind === 'rollback' ? 'rollout.create-rollback' : 'rollout.create', subject: `rollout:${id}`, after: { ...spec, kind, commit: rel.commit, version: rel.version } });
  });
  return id;
}

type AdminAction = 'pause' | 'resume' | 'abort' | 'rollback';

/** pause / resume / abort / rollback; returns the id of the rollout that now drives the group. */
export async function rolloutAction(fdb: FleetDb, id: string, action: AdminAction, actor: string, now: Date, reason?: string): Promise<string> {
  const at = now.toISOString();
  let rollbackSpec: RolloutSpec | null = null;
  await writeTx(fdb, async (tx) => {
    const r = await lockRollout(tx, fdb, id);
    const conflict = (why: string): never => {
      throw new StrataError('FLEET_CONFLICT', `cannot ${action} rollout ${id}: it is ${r.state}${why}`, { rollout: id, state: r.state });
    };
    const before = { state: r.state, pausedReason: r.paused_reason };
    const set: Partial<RolloutsTable> = { updated_at: at };
    if (action === 'pause') {
      if (r.state !== 'active') conflict('');
      Object.assign(set, { state: 'paused', paused_reason: reason ?? `paused by ${actor}` });
    } else if (action === 'resume') {
      if (r.state !== 'paused') conflict('');
      // Failures seen so far were looked at by whoever resumed: they no longer count.
      const waves = parseWaves(r);
      const rel = await releaseOf(tx, r.release_id);
      const stats = await waveStats(tx, r, rel.commit, waves[r.current_wave].percent, now);
      waves[r.current_wave].acknowledgedFailures = stats.failed;
      Object.assign(set, { state: 'active', paused_reason: null, waves: JSON.stringify(waves) });
    } else if (action === 'abort') {
      if (r.state !== 'active' && r.state !== 'paused') conflict('');
      Object.assign(set, { state: 'aborted' });
    } else {
      if (r.state === 'rolled-back' || r.state === 'aborted') conflict('');
      if (!r.previous_release_id) conflict('; the group had no release before it, so there is nothing to go back to');
      const newer = await tx.selectFrom('rollouts').select('id').where('group_name', '=', r.group_name).where('serial', '>', r.serial).executeTakeFirst();
      if (newer) conflict(`; rollout ${newer.id} came after it`);
      Object.assign(set, { state: 'rolled-back' });
      rollbackSpec = {
        releaseId: r.previous_release_id!,
        group: r.group_name,
        waves: [{ percent: 100, soakSeconds: 0 }],
        maxConcurrent: r.max_concurrent,
        window: null,
        failureThreshold: 1,
        graceSeconds: r.grace_seconds,
      };
      await tx.updateTable('groups').set({ release_id: r.previous_release_id }).where('name', '=', r.group_name).execute();
    }
    await tx.updateTable('rollouts').set(set).where('id', '=', id).execute();
    await appendAudit(tx, fdb.dialect, { at, actor, action: `rollout.${action}`, subject: `rollout:${id}`, before, after: { state: set.state, pausedReason: set.paused_reason ?? null } });
  });
  if (rollbackSpec) return createRollout(fdb, rollbackSpec, actor, now, 'rollback');
  if (action === 'resume') await advanceRollout(fdb, id, now, actor);
  return id;
}

export async function getRollout(fdb: FleetDb, id: string, now: Date): Promise<RolloutView> {
  const r = await fdb.db.selectFrom('rollouts').selectAll().where('id', '=', id).executeTakeFirst();
  if (!r) throw new StrataError('FLEET_NOT_FOUND', `no rollout '${id}'`, { rollout: id });
  return rolloutView(fdb, r, now, true);
}

export async function listRollouts(fdb: FleetDb, now: Date, group?: string): Promise<RolloutView[]> {
  let q = fdb.db.selectFrom('rollouts').selectAll();
  if (group) q = q.where('group_name', '=', group);
  const rows = await q.orderBy('serial', 'desc').limit(500).execute();
  return Promise.all(rows.map((r) => rolloutView(fdb, r, now, false)));
}

async function rolloutView(fdb: FleetDb, r: RolloutsTable, now: Date, withStats: boolean): Promise<RolloutView> {
  const rel = await releaseOf(fdb.db, r.release_id);
  const waves = parseWaves(r);
  const views: WaveView[] = [];
  for (const w of waves) {
    const s = withStats ? await waveStats(fdb.db, r, rel.commit, w.percent, now) : { devicesInWave: 0, updated: 0, healthy: 0, failed: 0 };
    views.push({ percent: w.percent, soakSeconds: w.soakSeconds, startedAt: w.startedAt, completedAt: w.completedAt, devices: s.devicesInWave, updated: s.updated, healthy: s.healthy, failed: s.failed });
  }
  return {
    id: r.id,
    releaseId: r.release_id,
    commit: rel.commit,
    version: rel.version,
    group: r.group_name,
    kind: r.kind as 'forward' | 'rollback',
    state: r.state as RolloutState,
    pausedReason: r.paused_reason,
    currentWave: Number(r.current_wave),
    waves: views,
    maxConcurrent: Number(r.max_concurrent),
    window: r.window ? (JSON.parse(r.window) as MaintenanceWindow) : null,
    failureThreshold: Number(r.failure_threshold),
    graceSeconds: Number(r.grace_seconds),
    previousReleaseId: r.previous_release_id,
    failureHistory: JSON.parse(r.failure_history),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}
