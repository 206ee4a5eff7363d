// Drift: devices that run something other than what their group should run.
// Three kinds: the booted commit is not the group's (once the rollout's
// grace has passed for the device's wave), /etc differs from the group's
// expected digest (set by an admin, else the strict majority of the group),
// or the device's last verify found its deployment tampered with.

import type { DevicesTable, FleetDb } from './db.js';
import { parseWaves } from './rollouts.js';
import { inWave } from './rollout-policy.js';

export interface DriftReason {
  kind: 'commit' | 'etc' | 'tampered';
  expected: string | null;
  actual: string | null;
}

export interface DriftEntry {
  deviceId: string;
  name: string;
  group: string;
  reasons: DriftReason[];
}

type DeviceRow = Pick<DevicesTable, 'id' | 'name' | 'group_name' | 'bucket' | 'booted_commit' | 'etc_digest' | 'verify'>;

/** The strict majority value, or null when there is none. */
export function majority(values: (string | null)[]): string | null {
  const counts = new Map<string, number>();
  let total = 0;
  for (const v of values) {
    if (v === null) continue;
    total++;
    counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  for (const [v, n] of counts) if (n * 2 > total) return v;
  return null;
}

interface GroupExpectation {
  /** The release the group had before its newest rollout (or after it completed). */
  baseCommit: string | null;
  rollout: null | { commit: string; state: string; currentWave: number; waves: ReturnType<typeof parseWaves>; graceSeconds: number };
  etc: string | null;
}

/** What commit a device of the group should run at `now`. */
export function expectedCommit(g: GroupExpectation, bucket: number, now: Date): string | null {
  const r = g.rollout;
  if (!r || r.state === 'aborted') return g.baseCommit;
  if (r.state === 'completed' || r.state === 'rolled-back') return r.state === 'completed' ? r.commit : g.baseCommit;
  // Active or paused: a device is due once a wave holding it started more than grace ago.
  for (let i = 0; i <= r.currentWave; i++) {
    const w = r.waves[i];
    if (inWave(bucket, w.percent)) {
      if (w.startedAt && now.getTime() - Date.parse(w.startedAt) >= r.graceSeconds * 1000) return r.commit;
      return null; // in its grace period: either commit is fine
    }
  }
  return g.baseCommit;
}

export function driftOf(d: DeviceRow, g: GroupExpectation, now: Date): DriftReason[] {
  const reasons: DriftReason[] = [];
  const want = expectedCommit(g, Number(d.bucket), now);
  if (want !== null && d.booted_commit !== want) reasons.push({ kind: 'commit', expected: want, actual: d.booted_commit });
  if (g.etc !== null && d.etc_digest !== null && d.etc_digest !== g.etc) reasons.push({ kind: 'etc', expected: g.etc, actual: d.etc_digest });
  if (d.verify) {
    const v = JSON.parse(d.verify) as { ok: boolean; modified: number; added: number; removed: number };
    if (!v.ok) reasons.push({ kind: 'tampered', expected: 'no changes', actual: `${v.modified} modified, ${v.added} added, ${v.removed} removed` });
  }
  return reasons;
}

export async function groupExpectations(fdb: FleetDb): Promise<Map<string, GroupExpectation>> {
  const groups = await fdb.db
    .selectFrom('groups as g')
    .leftJoin('releases as rel', 'rel.id', 'g.release_id')
    .select(['g.name', 'g.expected_etc_digest', 'rel.commit'])
    .execute();
  const out = new Map<string, GroupExpectation>();
  for (const g of groups) {
    const r = await fdb.db
      .selectFrom('rollouts as r')
      .innerJoin('releases as rel', 'rel.id', 'r.release_id')
      .leftJoin('releases as prev', 'prev.id', 'r.previous_release_id')
      .select(['r.state', 'r.current_wave', 'r.waves', 'r.grace_seconds', 'rel.commit', 'prev.commit as prev_commit'])
      .where('r.group_name', '=', g.name)
      .orderBy('r.serial', 'desc')
      .limit(1)
      .executeTakeFirst();
    let etc = g.expected_etc_digest;
    if (etc === null) {
      const digests = await fdb.db.selectFrom('devices').select('etc_digest').where('group_name', '=', g.name).where('etc_digest', 'is not', null).execute();
      etc = majority(digests.map((x) => x.etc_digest));
    }
    out.set(g.name, {
      baseCommit: r && (r.state === 'active' || r.state === 'paused') ? (r.prev_commit ?? null) : (g.commit ?? null),
      rollout: r ? { commit: r.commit, state: r.state, currentWave: Number(r.current_wave), waves: parseWaves(r), graceSeconds: Number(r.grace_seconds) } : null,
      etc,
    });
  }
  return out;
}

export async function driftReport(fdb: FleetDb, now: Date): Promise<DriftEntry[]> {
  const expect = await groupExpectations(fdb);
  const out: DriftEntry[] = [];
  const BATCH = 5000;
  let after = '';
  for (;;) {
    const rows = await fdb.db
      .selectFrom('devices')
      .select(['id', 'name', 'group_name', 'bucket', 'booted_commit', 'etc_digest', 'verify'])
      .where('id', '>', after)
      .orderBy('id')
      .limit(BATCH)
      .execute();
    for (const d of rows) {
      const g = expect.get(d.group_name) ?? { baseCommit: null, rollout: null, etc: null };
      const reasons = driftOf(d, g, now);
      if (reasons.length) out.push({ deviceId: d.id, name: d.name, group: d.group_name, reasons });
    }
    if (rows.length < BATCH) break;
    after = rows[rows.length - 1].id;
  }
  return out;
}
