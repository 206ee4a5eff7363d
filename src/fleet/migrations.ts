// Versioned schema migrations, kept in code (Kysely's Migrator records the
// applied ones in kysely_migration). They run at server start and before
// every fleet command; a database migrated by a newer strata is refused.

import { Migrator, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import { StrataError } from '../errors.js';
import type { FleetDb } from './db.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

const MIGRATIONS: Record<string, Migration> = {
  '0001-initial': {
    async up(db: AnyDb) {
      await db.schema
        .createTable('admin_tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('enrollment_tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('group_name', 'text', (c) => c.notNull())
        .addColumn('labels', 'text', (c) => c.notNull())
        .addColumn('reusable', 'integer', (c) => c.notNull())
        .addColumn('used_at', 'text')
        .addColumn('expires_at', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('channels')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('ref', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('groups')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('channel', 'text')
        .addColumn('expected_etc_digest', 'text')
        .addColumn('release_id', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('releases')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('channel', 'text', (c) => c.notNull())
        .addColumn('commit', 'text', (c) => c.notNull())
        .addColumn('version', 'text', (c) => c.notNull())
        .addColumn('notes', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('devices')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('machine_id', 'text')
        .addColumn('labels', 'text', (c) => c.notNull())
        .addColumn('group_name', 'text', (c) => c.notNull())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('bucket', 'integer', (c) => c.notNull())
        .addColumn('enrolled_at', 'text', (c) => c.notNull())
        .addColumn('last_seen', 'text')
        .addColumn('state', 'text')
        .addColumn('booted_commit', 'text')
        .addColumn('booted_version', 'text')
        .addColumn('staged_commit', 'text')
        .addColumn('etc_digest', 'text')
        .addColumn('health', 'text')
        .addColumn('verify', 'text')
        .addColumn('deployments', 'text')
        .addColumn('override_commit', 'text')
        .execute();
      await db.schema.createIndex('devices_group_bucket').on('devices').columns(['group_name', 'bucket']).execute();
      await db.schema.createIndex('devices_machine_id').on('devices').column('machine_id').execute();
      await db.schema
        .createTable('rollouts')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('serial', 'integer', (c) => c.notNull().unique())
        .addColumn('release_id', 'text', (c) => c.notNull())
        .addColumn('group_name', 'text', (c) => c.notNull())
        .addColumn('previous_release_id', 'text')
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('waves', 'text', (c) => c.notNull())
        .addColumn('max_concurrent', 'integer', (c) => c.notNull())
        .addColumn('window', 'text')
        .addColumn('failure_threshold', 'real', (c) => c.notNull())
        .addColumn('grace_seconds', 'integer', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('paused_reason', 'text')
        .addColumn('current_wave', 'integer', (c) => c.notNull())
        .addColumn('failure_history', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('rollouts_group_state').on('rollouts').columns(['group_name', 'state']).execute();
      await db.schema
        .createTable('device_rollouts')
        .addColumn('device_id', 'text', (c) => c.notNull())
        .addColumn('rollout_id', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('started_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('device_rollouts_pk', ['device_id', 'rollout_id'])
        .execute();
      await db.schema.createIndex('device_rollouts_rollout_state').on('device_rollouts').columns(['rollout_id', 'state']).execute();
      await db.schema
        .createTable('audit_log')
        .addColumn('seq', 'integer', (c) => c.primaryKey())
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('before', 'text')
        .addColumn('after', 'text')
        .addColumn('prev_hash', 'text', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('audit_subject_at').on('audit_log').columns(['subject', 'at']).execute();
      // One row: the last entry's seq and hash, written in the same
      // transaction as each append, so removing the newest entries shows too.
      await db.schema
        .createTable('audit_head')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('fleet_locks')
        .addColumn('group_name', 'text', (c) => c.notNull())
        .addColumn('holder', 'text', (c) => c.notNull())
        .addColumn('acquired_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('fleet_locks_pk', ['group_name', 'holder'])
        .execute();
    },
    async down(db: AnyDb) {
      for (const t of ['fleet_locks', 'audit_head', 'audit_log', 'device_rollouts', 'rollouts', 'devices', 'releases', 'groups', 'channels', 'enrollment_tokens', 'admin_tokens']) {
        await db.schema.dropTable(t).execute();
      }
    },
  },
};

class CodeMigrations implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    return MIGRATIONS;
  }
}

export const SCHEMA_VERSION = Object.keys(MIGRATIONS).sort().at(-1)!;

/** Brings the schema up to date; returns the names of the migrations applied now. */
export async function migrate(fdb: FleetDb): Promise<string[]> {
  const migrator = new Migrator({ db: fdb.db, provider: new CodeMigrations() });
  // Several instances starting at once: PostgreSQL serializes them with
  // Kysely's own lock; for SQLite, the lock table row does the same.
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const msg = (error as Error).message ?? String(error);
    throw new StrataError('FLEET_DB', `cannot migrate the fleet database ${fdb.shown}: ${msg}`, { url: fdb.shown });
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
