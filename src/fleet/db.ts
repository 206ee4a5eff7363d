// The fleet database: Kysely over SQLite (better-sqlite3, one file, the
// default) or PostgreSQL (pg, for several server instances). Times are ISO
// 8601 UTC strings, JSON values are text, booleans are 0/1 integers, so one
// schema and one set of queries serve both dialects.

import { Kysely, PostgresDialect, SqliteDialect, sql, type Transaction } from 'kysely';
import { StrataError } from '../errors.js';

export interface DevicesTable {
  id: string;
  name: string;
  machine_id: string | null;
  labels: string; // JSON object of strings
  group_name: string;
  token_hash: string;
  /** Stable 0..9999 bucket from the id's hash: the device is in a wave of p% when bucket < p*100. */
  bucket: number;
  enrolled_at: string;
  last_seen: string | null;
  state: string | null;
  booted_commit: string | null;
  booted_version: string | null;
  staged_commit: string | null;
  etc_digest: string | null;
  health: string | null; // JSON
  verify: string | null; // JSON
  deployments: string | null; // JSON
  /** A commit an admin asked this one device to go back to (POST /devices/:id/rollback). */
  override_commit: string | null;
}

export interface AdminTokensTable {
  id: string;
  name: string;
  role: string;
  token_hash: string;
  created_at: string;
}

export interface EnrollmentTokensTable {
  id: string;
  token_hash: string;
  group_name: string;
  labels: string;
  reusable: number;
  used_at: string | null;
  expires_at: string | null;
  created_at: string;
}

export interface ChannelsTable {
  name: string;
  ref: string;
  created_at: string;
}

export interface GroupsTable {
  name: string;
  channel: string | null;
  expected_etc_digest: string | null;
  /** The release the group runs once its rollouts are done (null before the first one). */
  release_id: string | null;
  created_at: string;
}

export interface ReleasesTable {
  id: string;
  channel: string;
  commit: string;
  version: string;
  notes: string;
  created_at: string;
}

export interface RolloutsTable {
  id: string;
  /** Creation order: the group's newest rollout is the one that counts. */
  serial: number;
  release_id: string;
  group_name: string;
  /** The group's release when the rollout began: what `rollback` returns to. */
  previous_release_id: string | null;
  kind: string; // forward | rollback
  waves: string; // JSON [{percent, soakSeconds, startedAt, completedAt}]
  max_concurrent: number;
  window: string | null; // JSON
  failure_threshold: number;
  grace_seconds: number;
  state: string; // active | paused | completed | aborted | rolled-back
  paused_reason: string | null;
  current_wave: number;
  failure_history: string; // JSON [{at, wave, rate}]
  created_at: string;
  updated_at: string;
}

export interface DeviceRolloutsTable {
  device_id: string;
  rollout_id: string;
  /** claimed | downloading | staged | rebooting | booted | healthy | unhealthy | rolled-back */
  state: string;
  started_at: string;
  updated_at: string;
}

export interface AuditTable {
  seq: number;
  at: string;
  actor: string;
  action: string;
  subject: string;
  before: string | null;
  after: string | null;
  prev_hash: string;
  hash: string;
}

export interface AuditHeadTable {
  id: number;
  seq: number;
  hash: string;
}

export interface FleetLocksTable {
  group_name: string;
  holder: string;
  acquired_at: string;
}

export interface FleetDatabase {
  devices: DevicesTable;
  admin_tokens: AdminTokensTable;
  enrollment_tokens: EnrollmentTokensTable;
  channels: ChannelsTable;
  groups: GroupsTable;
  releases: ReleasesTable;
  rollouts: RolloutsTable;
  device_rollouts: DeviceRolloutsTable;
  audit_log: AuditTable;
  audit_head: AuditHeadTable;
  fleet_locks: FleetLocksTable;
}

export type Dialect = 'sqlite' | 'postgres';

export interface FleetDb {
  db: Kysely<FleetDatabase>;
  dialect: Dialect;
  /** The URL without a password, for messages. */
  shown: string;
  close(): Promise<void>;
}

export type Tx = Transaction<FleetDatabase> | Kysely<FleetDatabase>;

/** `sqlite:PATH`, `sqlite::memory:`, a bare path, or `postgres://…` / `postgresql://…`. */
export function parseDbUrl(url: string): { dialect: Dialect; target: string } {
  if (/^postgres(ql)?:\/\//.test(url)) return { dialect: 'postgres', target: url };
  if (url.startsWith('sqlite:')) {
    const target = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (!target) throw new StrataError('USAGE', `--db '${url}' names no file; use sqlite:./fleet.db`);
    return { dialect: 'sqlite', target };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) throw new StrataError('USAGE', `--db '${url}': only sqlite:PATH and postgres:// URLs are supported`);
  return { dialect: 'sqlite', target: url };
}

function hidePassword(url: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/[^:/@]+:)[^@]*@/, '$1***@');
}

export async function openDb(url: string, opts: { poolSize?: number } = {}): Promise<FleetDb> {
  const { dialect, target } = parseDbUrl(url);
  if (dialect === 'sqlite') {
    const { default: Database } = await import('better-sqlite3');
    let raw;
    try {
      raw = new Database(target);
    } catch (err) {
      throw new StrataError('FLEET_DB', `cannot open the SQLite database ${target}: ${(err as Error).message}`, { url });
    }
    // WAL lets readers run beside the one writer; busy_timeout makes a second
    // process wait for the write lock instead of failing at once.
    raw.pragma('journal_mode = WAL');
    raw.pragma('synchronous = NORMAL');
    raw.pragma('busy_timeout = 5000');
    raw.pragma('foreign_keys = ON');
    const db = new Kysely<FleetDatabase>({ dialect: new SqliteDialect({ database: raw }) });
    return { db, dialect, shown: url, close: () => db.destroy() };
  }
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({ connectionString: target, max: opts.poolSize ?? 10 });
  const db = new Kysely<FleetDatabase>({ dialect: new PostgresDialect({ pool }) });
  try {
    await sql`select 1`.execute(db);
  } catch (err) {
    await db.destroy().catch(() => {});
    throw new StrataError('FLEET_DB', `cannot connect to ${hidePassword(url)}: ${(err as Error).message}`, { url: hidePassword(url) });
  }
  return { db, dialect, shown: hidePassword(url), close: () => db.destroy() };
}

/**
 * Runs `fn` in a write transaction that holds the database's write lock from
 * its first statement: BEGIN IMMEDIATE on SQLite (so two processes never
 * both read and then both write), a plain transaction on PostgreSQL where
 * callers take row locks (`for update`) or the advisory lock they need.
 */
export async function writeTx<T>(fdb: FleetDb, fn: (tx: Tx) => Promise<T>): Promise<T> {
  if (fdb.dialect === 'postgres') return fdb.db.transaction().execute(fn);
  return fdb.db.connection().execute(async (conn) => {
    await sql`begin immediate`.execute(conn);
    try {
      const result = await fn(conn);
      await sql`commit`.execute(conn);
      return result;
    } catch (err) {
      await sql`rollback`.execute(conn).catch(() => {});
      throw err;
    }
  });
}
