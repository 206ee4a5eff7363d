// FleetLock (Zincati's reboot coordination): a counting semaphore per group
// with owned, recursive locks. A group has as many slots as its active
// rollout's maxConcurrent, or one. Locks are rows, taken in a write
// transaction, so instances behind a load balancer share them.

import { sql } from 'kysely';
import { writeTx, type FleetDb } from './db.js';
import { appendAudit } from './audit.js';

export type LockResult = { ok: true } | { ok: false; status: number; kind: string; value: string };

/** The device a FleetLock client id names: a device id or a machine id. */
async function findDevice(fdb: FleetDb, id: string): Promise<{ id: string; group_name: string } | undefined> {
  return fdb.db.selectFrom('devices').select(['id', 'group_name']).where((eb) => eb.or([eb('id', '=', id), eb('machine_id', '=', id)])).executeTakeFirst();
}

async function slotsOf(fdb: FleetDb, group: string): Promise<number> {
  const r = await fdb.db.selectFrom('rollouts').select('max_concurrent').where('group_name', '=', group).where('state', '=', 'active').orderBy('serial', 'desc').executeTakeFirst();
  return r ? Number(r.max_concurrent) : 1;
}

export async function preReboot(fdb: FleetDb, clientId: string, group: string, now: Date): Promise<LockResult> {
  const dev = await findDevice(fdb, clientId);
  if (!dev) return { ok: false, status: 404, kind: 'unknown_client', value: `no enrolled device has id or machine id '${clientId}'` };
  const slots = await slotsOf(fdb, group);
  return writeTx(fdb, async (tx) => {
    if (fdb.dialect === 'postgres') await sql`select pg_advisory_xact_lock(hashtext(${'fleetlock:' + group}))`.execute(tx);
    const holders = await tx.selectFrom('fleet_locks').select('holder').where('group_name', '=', group).execute();
    if (holders.some((h) => h.holder === dev.id)) return { ok: true } as const; // recursive: already held
    if (holders.length >= slots) {
      return { ok: false, status: 409, kind: 'failed_lock', value: `all ${slots} reboot slot(s) of group '${group}' are held (${holders.map((h) => h.holder).join(', ')})` } as const;
    }
    const at = now.toISOString();
    await tx.insertInto('fleet_locks').values({ group_name: group, holder: dev.id, acquired_at: at }).execute();
    await appendAudit(tx, fdb.dialect, { at, actor: `device:${dev.id}`, action: 'fleetlock.lock', subject: `device:${dev.id}`, after: { group } });
    return { ok: true } as const;
  });
}

export async function steadyState(fdb: FleetDb, clientId: string, group: string, now: Date): Promise<LockResult> {
  const dev = await findDevice(fdb, clientId);
  if (!dev) return { ok: false, status: 404, kind: 'unknown_client', value: `no enrolled device has id or machine id '${clientId}'` };
  return writeTx(fdb, async (tx) => {
    const res = await tx.deleteFrom('fleet_locks').where('group_name', '=', group).where('holder', '=', dev.id).executeTakeFirst();
    if (Number(res.numDeletedRows) > 0) {
      await appendAudit(tx, fdb.dialect, { at: now.toISOString(), actor: `device:${dev.id}`, action: 'fleetlock.unlock', subject: `device:${dev.id}`, after: { group } });
    }
    return { ok: true } as const; // unlock-if-held: not holding is fine
  });
}

export async function listLocks(fdb: FleetDb): Promise<{ group: string; holder: string; acquiredAt: string }[]> {
  const rows = await fdb.db.selectFrom('fleet_locks').selectAll().orderBy('group_name').orderBy('acquired_at').execute();
  return rows.map((r) => ({ group: r.group_name, holder: r.holder, acquiredAt: r.acquired_at }));
}
