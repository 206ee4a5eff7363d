// A fleet server for one test: a fresh database (a SQLite file in a temp dir,
// or a new database in the run's PostgreSQL cluster), migrated, an app built
// with a clock the test moves, and admin and viewer tokens.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inject } from 'vitest';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApp, type FleetAppOptions } from '../../../src/fleet/app.js';
import { openDb, type Dialect, type FleetDb } from '../../../src/fleet/db.js';
import { migrate } from '../../../src/fleet/migrations.js';
import { createAdminToken } from '../../../src/fleet/tokens.js';
import { createDatabase } from './postgres.js';

export const DIALECTS: Dialect[] = ['sqlite', 'postgres'];

export interface Clock {
  now(): Date;
  set(iso: string): void;
  advance(seconds: number): void;
}

export function makeClock(start = '2026-03-02T10:00:00.000Z'): Clock {
  let t = Date.parse(start);
  return { now: () => new Date(t), set: (iso) => (t = Date.parse(iso)), advance: (s) => (t += s * 1000) };
}

export async function openTestDb(dialect: Dialect): Promise<{ url: string; fdb: FleetDb; cleanup(): Promise<void> }> {
  if (dialect === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-fleet-'));
    const url = `sqlite:${path.join(dir, 'fleet.db')}`;
    const fdb = await openDb(url);
    await migrate(fdb);
    return { url, fdb, cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }) };
  }
  const admin = inject('fleetPgUrl');
  if (!admin) throw new Error(`no PostgreSQL cluster for the fleet tests: ${inject('fleetPgError') || 'the global setup did not start one'}`);
  const db = await createDatabase(admin);
  const fdb = await openDb(db.url, { poolSize: 4 });
  await migrate(fdb);
  return { url: db.url, fdb, cleanup: () => db.drop() };
}

export interface TestFleet {
  app: FastifyInstance;
  fdb: FleetDb;
  url: string;
  clock: Clock;
  admin: string;
  viewer: string;
  /** inject with a bearer token */
  req(method: string, url: string, token?: string | null, body?: unknown): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

export async function makeFleet(dialect: Dialect, opts: Partial<FleetAppOptions> = {}): Promise<TestFleet> {
  const { url, fdb, cleanup } = await openTestDb(dialect);
  const clock = makeClock();
  const app = await buildApp({ db: fdb, now: clock.now, repoUrl: 'http://cdn.example/repo', evaluateEverySeconds: 0, ...opts });
  const admin = (await createAdminToken(fdb, { name: 'root', role: 'admin', actor: 'test', now: clock.now() })).token;
  const viewer = (await createAdminToken(fdb, { name: 'watcher', role: 'viewer', actor: 'test', now: clock.now() })).token;
  return {
    app, fdb, url, clock, admin, viewer,
    req(method, u, token, body) {
      return app.inject({
        method: method as 'GET',
        url: u,
        headers: token ? { authorization: `Bearer ${token}` } : {},
        ...(body !== undefined ? { payload: body as object } : {}),
      });
    },
    async close() {
      await app.close();
      await fdb.close();
      await cleanup();
    },
  };
}

export const commitOf = (n: number): string => n.toString(16).padStart(64, '0');
