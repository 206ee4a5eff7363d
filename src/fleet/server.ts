// Opening the fleet database for a command or a server: open, migrate, and
// (for `strata fleet serve`) build the app and listen.

import { StrataError } from '../errors.js';
import { buildApp, type FleetAppOptions } from './app.js';
import { openDb, type FleetDb } from './db.js';
import { migrate } from './migrations.js';

export const DEFAULT_DB = 'sqlite:./fleet.db';

export function dbUrl(opt: string | undefined): string {
  return opt ?? process.env.STRATA_FLEET_DB ?? DEFAULT_DB;
}

/** Opens and migrates; the caller closes. */
export async function openFleetDb(url: string): Promise<FleetDb> {
  const fdb = await openDb(url);
  try {
    await migrate(fdb);
  } catch (err) {
    await fdb.close();
    throw err;
  }
  return fdb;
}

/** Runs `fn` with a migrated database, closing it afterwards. */
export async function withFleetDb<T>(url: string, fn: (fdb: FleetDb) => Promise<T>): Promise<T> {
  const fdb = await openFleetDb(url);
  try {
    return await fn(fdb);
  } finally {
    await fdb.close();
  }
}

export interface ServeFleetOptions extends Omit<FleetAppOptions, 'db' | 'closeDb'> {
  db: string;
  port?: number;
  host?: string;
}

export async function serveFleet(opts: ServeFleetOptions): Promise<{ url: string; close(): Promise<void> }> {
  const fdb = await openFleetDb(opts.db);
  let app;
  try {
    app = await buildApp({ ...opts, db: fdb, closeDb: true });
  } catch (err) {
    await fdb.close();
    throw err;
  }
  const host = opts.host ?? '127.0.0.1';
  try {
    await app.listen({ port: opts.port ?? 8080, host });
  } catch (err) {
    await app.close();
    const e = err as NodeJS.ErrnoException;
    throw new StrataError('LISTEN_FAILED', `cannot listen on ${host}:${opts.port ?? 8080}: ${e.code ?? e.message}`, { host, port: opts.port });
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return { url: `http://${shown}:${port}/`, close: () => app.close() };
}
