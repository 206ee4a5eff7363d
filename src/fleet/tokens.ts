// Tokens: 32 random bytes (base64url) handed out once; the database keeps
// only their SHA-256, looked up through a unique index.

import { createHash, randomBytes } from 'node:crypto';
import { StrataError } from '../errors.js';
import { appendAudit } from './audit.js';
import { writeTx, type FleetDb } from './db.js';

export type Role = 'admin' | 'viewer';

export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(9).toString('base64url').replace(/[-_]/g, 'x')}`;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function checkName(what: string, name: string): void {
  if (!NAME.test(name)) throw new StrataError('FLEET_BAD_REQUEST', `${what} '${name.slice(0, 80)}' is not valid: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`, { field: what });
}

export interface CreatedAdminToken {
  id: string;
  name: string;
  role: Role;
  token: string;
}

export async function createAdminToken(fdb: FleetDb, opts: { name: string; role: Role; actor: string; now?: Date }): Promise<CreatedAdminToken> {
  checkName('token name', opts.name);
  if (opts.role !== 'admin' && opts.role !== 'viewer') throw new StrataError('FLEET_BAD_REQUEST', `role must be admin or viewer, got '${opts.role}'`, { field: 'role' });
  const token = newToken();
  const id = newId('tok');
  const at = (opts.now ?? new Date()).toISOString();
  await writeTx(fdb, async (tx) => {
    await tx.insertInto('admin_tokens').values({ id, name: opts.name, role: opts.role, token_hash: hashToken(token), created_at: at }).execute();
    await appendAudit(tx, fdb.dialect, { at, actor: opts.actor, action: 'token.create', subject: `token:${id}`, after: { name: opts.name, role: opts.role } });
  });
  return { id, name: opts.name, role: opts.role, token };
}

export interface CreatedEnrollmentToken {
  id: string;
  token: string;
  group: string;
  reusable: boolean;
  labels: Record<string, string>;
  expiresAt: string | null;
}

export async function createEnrollmentToken(
  fdb: FleetDb,
  opts: { group?: string; reusable?: boolean; labels?: Record<string, string>; expiresAt?: string | null; actor: string; now?: Date },
): Promise<CreatedEnrollmentToken> {
  const group = opts.group ?? 'default';
  checkName('group', group);
  const token = newToken();
  const id = newId('enr');
  const at = (opts.now ?? new Date()).toISOString();
  const labels = opts.labels ?? {};
  await writeTx(fdb, async (tx) => {
    await tx
      .insertInto('enrollment_tokens')
      .values({ id, token_hash: hashToken(token), group_name: group, labels: JSON.stringify(labels), reusable: opts.reusable ? 1 : 0, used_at: null, expires_at: opts.expiresAt ?? null, created_at: at })
      .execute();
    const exists = await tx.selectFrom('groups').select('name').where('name', '=', group).executeTakeFirst();
    if (!exists) await tx.insertInto('groups').values({ name: group, channel: null, expected_etc_digest: null, release_id: null, created_at: at }).execute();
    await appendAudit(tx, fdb.dialect, { at, actor: opts.actor, action: 'enrollment-token.create', subject: `enrollment-token:${id}`, after: { group, reusable: !!opts.reusable, labels } });
  });
  return { id, token, group, reusable: !!opts.reusable, labels, expiresAt: opts.expiresAt ?? null };
}
