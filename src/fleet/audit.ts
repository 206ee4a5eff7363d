// The audit log: append-only entries, each carrying the hash of the one
// before it, so that editing or deleting any entry breaks the chain from
// there on. Appends are serialized (an advisory lock on PostgreSQL, the
// write lock of BEGIN IMMEDIATE on SQLite) and happen in the transaction of
// the change they record, so a change and its entry commit together.

import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { AuditTable, FleetDb, Tx, Dialect } from './db.js';

export const GENESIS_HASH = '0'.repeat(64);
/** An arbitrary constant naming the audit chain's advisory lock on PostgreSQL. */
const AUDIT_LOCK_KEY = 0x57a7a;

export interface AuditInput {
  at: string;
  actor: string;
  action: string;
  subject: string;
  before?: unknown;
  after?: unknown;
}

export interface AuditEntry {
  seq: number;
  at: string;
  actor: string;
  action: string;
  subject: string;
  before: unknown;
  after: unknown;
  prevHash: string;
  hash: string;
}

/** The hash of an entry as stored: its fields as text, after the previous hash. */
export function entryHash(row: Omit<AuditTable, 'hash'>): string {
  const fields = [row.seq, row.at, row.actor, row.action, row.subject, row.before, row.after];
  return createHash('sha256').update(row.prev_hash).update('\n').update(JSON.stringify(fields)).digest('hex');
}

const toText = (v: unknown): string | null => (v === undefined || v === null ? null : JSON.stringify(v));

/** Appends one entry inside `tx` (which must be a write transaction). */
export async function appendAudit(tx: Tx, dialect: Dialect, e: AuditInput): Promise<number> {
  if (dialect === 'postgres') await sql`select pg_advisory_xact_lock(${AUDIT_LOCK_KEY})`.execute(tx);
  const head = await tx.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirst();
  const row = {
    seq: (head?.seq ?? 0) + 1,
    at: e.at,
    actor: e.actor,
    action: e.action,
    subject: e.subject,
    before: toText(e.before),
    after: toText(e.after),
    prev_hash: head?.hash ?? GENESIS_HASH,
  };
  const hash = entryHash(row);
  await tx.insertInto('audit_log').values({ ...row, hash }).execute();
  if (head) await tx.updateTable('audit_head').set({ seq: row.seq, hash }).where('id', '=', 1).execute();
  else await tx.insertInto('audit_head').values({ id: 1, seq: row.seq, hash }).execute();
  return row.seq;
}

export function toEntry(r: AuditTable): AuditEntry {
  return {
    seq: Number(r.seq),
    at: r.at,
    actor: r.actor,
    action: r.action,
    subject: r.subject,
    before: r.before === null ? null : JSON.parse(r.before),
    after: r.after === null ? null : JSON.parse(r.after),
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

export interface AuditVerifyResult {
  ok: boolean;
  entries: number;
  firstBad?: { seq: number; reason: string };
}

/** Recomputes the chain from the first entry; names the first entry altered or removed. */
export async function verifyAudit(fdb: FleetDb): Promise<AuditVerifyResult> {
  let expectedSeq = 1;
  let prevHash = GENESIS_HASH;
  let entries = 0;
  const BATCH = 2000;
  for (;;) {
    const rows = await fdb.db.selectFrom('audit_log').selectAll().where('seq', '>=', expectedSeq).orderBy('seq').limit(BATCH).execute();
    for (const raw of rows) {
      const r = { ...raw, seq: Number(raw.seq) };
      if (r.seq !== expectedSeq) return { ok: false, entries, firstBad: { seq: expectedSeq, reason: `entry ${expectedSeq} was removed (the log jumps to ${r.seq})` } };
      if (r.prev_hash !== prevHash) return { ok: false, entries, firstBad: { seq: r.seq, reason: `entry ${r.seq} does not carry the hash of entry ${r.seq - 1}: an entry before it was altered or replaced` } };
      if (entryHash(r) !== r.hash) return { ok: false, entries, firstBad: { seq: r.seq, reason: `entry ${r.seq} was altered (its content does not match its hash)` } };
      prevHash = r.hash;
      expectedSeq++;
      entries++;
    }
    if (rows.length < BATCH) break;
  }
  const head = await fdb.db.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirst();
  const headSeq = head ? Number(head.seq) : 0;
  if (headSeq !== entries || (head && head.hash !== prevHash)) {
    return { ok: false, entries, firstBad: { seq: entries + 1, reason: `the log ends at entry ${entries} but its head records entry ${headSeq}: the newest entries were removed or altered` } };
  }
  return { ok: true, entries };
}

export interface AuditQuery {
  device?: string;
  action?: string;
  since?: string;
  until?: string;
  limit?: number;
}

export async function listAudit(fdb: FleetDb, q: AuditQuery): Promise<AuditEntry[]> {
  let query = fdb.db.selectFrom('audit_log').selectAll();
  if (q.device) query = query.where('subject', '=', `device:${q.device}`);
  if (q.action) query = query.where('action', '=', q.action);
  if (q.since) query = query.where('at', '>=', q.since);
  if (q.until) query = query.where('at', '<=', q.until);
  const rows = await query.orderBy('seq', 'desc').limit(q.limit ?? 100).execute();
  return rows.map(toEntry);
}

export interface RanAt {
  commit: string | null;
  version: string | null;
  /** When the device started running it, as far as the log tells. */
  since: string | null;
}

/** What commit the device was booted in at time `at`, from its state-change entries. */
export async function commitAt(fdb: FleetDb, deviceId: string, at: string): Promise<RanAt> {
  const rows = await fdb.db
    .selectFrom('audit_log')
    .select(['seq', 'at', 'after'])
    .where('subject', '=', `device:${deviceId}`)
    .where('at', '<=', at)
    .orderBy('seq', 'desc')
    .limit(5000)
    .execute();
  let found: RanAt | null = null;
  for (const r of rows) {
    const after = r.after ? (JSON.parse(r.after) as { bootedCommit?: string | null; bootedVersion?: string | null }) : {};
    if (after.bootedCommit === undefined) continue;
    if (found === null) found = { commit: after.bootedCommit, version: after.bootedVersion ?? null, since: r.at };
    else if (after.bootedCommit === found.commit) found.since = r.at;
    else break;
  }
  return found ?? { commit: null, version: null, since: null };
}
