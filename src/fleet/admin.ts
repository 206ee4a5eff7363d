// Admin operations on channels, groups, releases and devices. Each write
// runs in one transaction with its audit entry (actor, action, before, after).

import { StrataError } from '../errors.js';
import { appendAudit, listAudit } from './audit.js';
import { writeTx, type DevicesTable, type FleetDb } from './db.js';
import { driftReport } from './drift.js';
import { newId } from './tokens.js';

export interface Channel { name: string; ref: string; createdAt: string }
export interface Group { name: string; channel: string | null; expectedEtcDigest: string | null; releaseId: string | null; createdAt: string }
export interface Release { id: string; channel: string; commit: string; version: string; notes: string; createdAt: string }

const conflictOnDuplicate = (err: unknown, what: string): never => {
  const msg = (err as Error).message ?? '';
  if (/unique|duplicate/i.test(msg)) throw new StrataError('FLEET_CONFLICT', `${what} exists already`);
  throw err;
};

export async function listChannels(fdb: FleetDb): Promise<Channel[]> {
  const rows = await fdb.db.selectFrom('channels').selectAll().orderBy('name').execute();
  return rows.map((r) => ({ name: r.name, ref: r.ref, createdAt: r.created_at }));
}

export async function createChannel(fdb: FleetDb, c: { name: string; ref: string }, actor: string, now: Date): Promise<Channel> {
  const at = now.toISOString();
  await writeTx(fdb, async (tx) => {
    await tx.insertInto('channels').values({ name: c.name, ref: c.ref, created_at: at }).execute().catch((e) => conflictOnDuplicate(e, `channel '${c.name}'`));
    await appendAudit(tx, fdb.dialect, { at, actor, action: 'channel.create', subject: `channel:${c.name}`, after: c });
  });
  return { ...c, createdAt: at };
}

const groupOf = (r: { name: string; channel: string | null; expected_etc_digest: string | null; release_id: string | null; created_at: string }): Group => ({
  name: r.name, channel: r.channel, expectedEtcDigest: r.expected_etc_digest, releaseId: r.release_id, createdAt: r.created_at,
});

export async function listGroups(fdb: FleetDb): Promise<Group[]> {
  return (await fdb.db.selectFrom('groups').selectAll().orderBy('name').execute()).map(groupOf);
}

export async function createGroup(fdb: FleetDb, g: { name: string; channel?: string | null; expectedEtcDigest?: string | null; releaseId?: string | null }, actor: string, now: Date): Promise<Group> {
  const at = now.toISOString();
  const row = { name: g.name, channel: g.channel ?? null, expected_etc_digest: g.expectedEtcDigest ?? null, release_id: g.releaseId ?? null, created_at: at };
  await writeTx(fdb, async (tx) => {
    if (row.channel && !(await tx.selectFrom('channels').select('name').where('name', '=', row.channel).executeTakeFirst())) throw new StrataError('FLEET_NOT_FOUND', `no channel '${row.channel}'`);
    if (row.release_id && !(await tx.selectFrom('releases').select('id').where('id', '=', row.release_id).executeTakeFirst())) throw new StrataError('FLEET_NOT_FOUND', `no release '${row.release_id}'`);
    await tx.insertInto('groups').values(row).execute().catch((e) => conflictOnDuplicate(e, `group '${g.name}'`));
    await appendAudit(tx, fdb.dialect, { at, actor, action: 'group.create', subject: `group:${g.name}`, after: groupOf(row) });
  });
  return groupOf(row);
}

export async function patchGroup(fdb: FleetDb, name: string, p: { channel?: string | null; expectedEtcDigest?: string | null; releaseId?: string | null }, actor: string, now: Date): Promise<Group> {
  const at = now.toISOString();
  return writeTx(fdb, async (tx) => {
    const g = await tx.selectFrom('groups').selectAll().where('name', '=', name).executeTakeFirst();
    if (!g) throw new StrataError('FLEET_NOT_FOUND', `no group '${name}'`);
    const next = { ...g };
    if (p.channel !== undefined) next.channel = p.channel;
    if (p.expectedEtcDigest !== undefined) next.expected_etc_digest = p.expectedEtcDigest;
    if (p.releaseId !== undefined) next.release_id = p.releaseId;
    await tx.updateTable('groups').set({ channel: next.channel, expected_etc_digest: next.expected_etc_digest, release_id: next.release_id }).where('name', '=', name).execute();
    await appendAudit(tx, fdb.dialect, { at, actor, action: 'group.update', subject: `group:${name}`, before: groupOf(g), after: groupOf(next) });
    return groupOf(next);
  });
}

const releaseOf = (r: { id: string; channel: string; commit: string; version: string; notes: string; created_at: string }): Release => ({
  id: r.id, channel: r.channel, commit: r.commit, version: r.version, notes: r.notes, createdAt: r.created_at,
});

export async function listReleases(fdb: FleetDb, channel?: string): Promise<Release[]> {
  let q = fdb.db.selectFrom('releases').selectAll();
  if (channel) q = q.where('channel', '=', channel);
  return (await q.orderBy('created_at', 'desc').limit(1000).execute()).map(releaseOf);
}

export async function createRelease(fdb: FleetDb, r: { channel: string; commit: string; version: string; notes?: string }, actor: string, now: Date): Promise<Release> {
  const at = now.toISOString();
  const row = { id: newId('rel'), channel: r.channel, commit: r.commit, version: r.version, notes: r.notes ?? '', created_at: at };
  await writeTx(fdb, async (tx) => {
    if (!(await tx.selectFrom('channels').select('name').where('name', '=', r.channel).executeTakeFirst())) throw new StrataError('FLEET_NOT_FOUND', `no channel '${r.channel}'; create it first`);
    await tx.insertInto('releases').values(row).execute();
    await appendAudit(tx, fdb.dialect, { at, actor, action: 'release.create', subject: `release:${row.id}`, after: releaseOf(row) });
  });
  return releaseOf(row);
}

export interface DeviceView {
  id: string;
  name: string;
  machineId: string | null;
  group: string;
  labels: Record<string, string>;
  state: string | null;
  lastSeen: string | null;
  enrolledAt: string;
  booted: { commit: string | null; version: string | null };
  stagedCommit: string | null;
  etcDigest: string | null;
  health: unknown;
  verify: unknown;
  deployments: unknown;
  overrideCommit: string | null;
}

const deviceView = (d: DevicesTable): DeviceView => ({
  id: d.id,
  name: d.name,
  machineId: d.machine_id,
  group: d.group_name,
  labels: JSON.parse(d.labels),
  state: d.state,
  lastSeen: d.last_seen,
  enrolledAt: d.enrolled_at,
  booted: { commit: d.booted_commit, version: d.booted_version },
  stagedCommit: d.staged_commit,
  etcDigest: d.etc_digest,
  health: d.health ? JSON.parse(d.health) : null,
  verify: d.verify ? JSON.parse(d.verify) : null,
  deployments: d.deployments ? JSON.parse(d.deployments) : [],
  overrideCommit: d.override_commit,
});

export interface DeviceFilter {
  label?: string[];
  state?: string;
  group?: string;
  version?: string;
  limit?: number;
  offset?: number;
}

export async function listDevices(fdb: FleetDb, f: DeviceFilter): Promise<DeviceView[]> {
  let q = fdb.db.selectFrom('devices').selectAll();
  if (f.state) q = q.where('state', '=', f.state);
  if (f.group) q = q.where('group_name', '=', f.group);
  if (f.version) q = q.where('booted_version', '=', f.version);
  const wanted = (f.label ?? []).map((l) => {
    const i = l.indexOf('=');
    if (i <= 0) throw new StrataError('FLEET_BAD_REQUEST', `label filter '${l.slice(0, 80)}' is not key=value`, { field: 'label' });
    return [l.slice(0, i), l.slice(i + 1)] as const;
  });
  // Label filters match the JSON text first (cheap, indexed by nothing but
  // narrowing), then exactly on the parsed labels.
  for (const [k, v] of wanted) q = q.where('labels', 'like', `%${JSON.stringify(k).slice(0, -1)}":${JSON.stringify(v)}%`);
  const rows = await q.orderBy('name').orderBy('id').limit(f.limit ?? 500).offset(f.offset ?? 0).execute();
  return rows.map(deviceView).filter((d) => wanted.every(([k, v]) => d.labels[k] === v));
}

export async function getDevice(fdb: FleetDb, id: string): Promise<DeviceView & { history: Awaited<ReturnType<typeof listAudit>> }> {
  const d = await fdb.db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
  if (!d) throw new StrataError('FLEET_NOT_FOUND', `no device '${id}'`, { device: id });
  return { ...deviceView(d), history: await listAudit(fdb, { device: id, limit: 100 }) };
}

export async function patchDevice(fdb: FleetDb, id: string, p: { group?: string; labels?: Record<string, string> }, actor: string, now: Date): Promise<DeviceView> {
  const at = now.toISOString();
  return writeTx(fdb, async (tx) => {
    const d = await tx.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
    if (!d) throw new StrataError('FLEET_NOT_FOUND', `no device '${id}'`, { device: id });
    if (p.group && !(await tx.selectFrom('groups').select('name').where('name', '=', p.group).executeTakeFirst())) throw new StrataError('FLEET_NOT_FOUND', `no group '${p.group}'`);
    const next = { ...d, group_name: p.group ?? d.group_name, labels: p.labels ? JSON.stringify(p.labels) : d.labels };
    await tx.updateTable('devices').set({ group_name: next.group_name, labels: next.labels }).where('id', '=', id).execute();
    await appendAudit(tx, fdb.dialect, { at, actor, action: 'device.update', subject: `device:${id}`, before: { group: d.group_name, labels: JSON.parse(d.labels) }, after: { group: next.group_name, labels: JSON.parse(next.labels) } });
    return deviceView(next);
  });
}

/** Sends one device back to its previous deployment's commit (the one marked rollback, else the other one). */
export async function rollbackDevice(fdb: FleetDb, id: string, actor: string, now: Date): Promise<{ commit: string }> {
  const at = now.toISOString();
  return writeTx(fdb, async (tx) => {
    const d = await tx.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
    if (!d) throw new StrataError('FLEET_NOT_FOUND', `no device '${id}'`, { device: id });
    const deps = (d.deployments ? JSON.parse(d.deployments) : []) as { commit: string; booted?: boolean; rollback?: boolean }[];
    const prev = deps.find((x) => x.rollback) ?? deps.find((x) => !x.booted && x.commit !== d.booted_commit);
    if (!prev) throw new StrataError('FLEET_CONFLICT', `device ${id} reported no previous deployment to go back to`, { device: id });
    await tx.updateTable('devices').set({ override_commit: prev.commit }).where('id', '=', id).execute();
    await appendAudit(tx, fdb.dialect, { at, actor, action: 'device.rollback', subject: `device:${id}`, before: { bootedCommit: d.booted_commit }, after: { overrideCommit: prev.commit } });
    return { commit: prev.commit };
  });
}

export interface Overview {
  devices: number;
  byVersion: Record<string, number>;
  byGroup: Record<string, number>;
  byState: Record<string, number>;
  byChannel: Record<string, number>;
  healthy: number;
  updating: number;
  failed: number;
  drifting: number;
  offline: number;
}

export async function overview(fdb: FleetDb, now: Date, offlineAfterSeconds = 3600): Promise<Overview> {
  const rows = await fdb.db
    .selectFrom('devices as d')
    .leftJoin('groups as g', 'g.name', 'd.group_name')
    .select(['d.booted_version', 'd.group_name', 'd.state', 'g.channel', (eb) => eb.fn.countAll().as('n')])
    .groupBy(['d.booted_version', 'd.group_name', 'd.state', 'g.channel'])
    .execute();
  const o: Overview = { devices: 0, byVersion: {}, byGroup: {}, byState: {}, byChannel: {}, healthy: 0, updating: 0, failed: 0, drifting: 0, offline: 0 };
  const cutoff = new Date(now.getTime() - offlineAfterSeconds * 1000).toISOString();
  const add = (m: Record<string, number>, k: string, n: number): void => {
    m[k] = (m[k] ?? 0) + n;
  };
  for (const r of rows) {
    const n = Number(r.n);
    o.devices += n;
    add(o.byVersion, r.booted_version ?? 'unknown', n);
    add(o.byGroup, r.group_name, n);
    add(o.byState, r.state ?? 'unknown', n);
    add(o.byChannel, r.channel ?? 'none', n);
    if (r.state === 'healthy') o.healthy += n;
    else if (r.state === 'unhealthy' || r.state === 'rolled-back') o.failed += n;
    else if (r.state && r.state !== 'booted') o.updating += n;
  }
  const off = await fdb.db.selectFrom('devices').select((eb) => eb.fn.countAll().as('n')).where((eb) => eb.or([eb('last_seen', 'is', null), eb('last_seen', '<', cutoff)])).executeTakeFirst();
  o.offline = Number(off?.n ?? 0);
  o.drifting = (await driftReport(fdb, now)).length;
  return o;
}
