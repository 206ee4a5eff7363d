// Starts one PostgreSQL cluster per vitest run, only when fleet tests are
// among the files to run (a bare `vitest run` or a filter naming test/fleet),
// and hands its URL to the tests with provide/inject.

import type { TestProject } from 'vitest/node';
import { startPostgres, type PgCluster } from './helpers/postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    fleetPgUrl: string;
    fleetPgError: string;
  }
}

function fleetFilesSelected(argv: string[]): boolean {
  const i = argv.findIndex((a) => a === 'run' || a === 'watch' || a === 'dev');
  const filters = argv.slice(i >= 0 ? i + 1 : 2).filter((a) => !a.startsWith('-'));
  if (filters.length === 0) return true;
  return filters.some((f) => f.includes('fleet') || 'test/fleet/'.startsWith(f.replace(/^\.\//, '')));
}

let cluster: PgCluster | null = null;

export default async function setup(project: TestProject): Promise<() => void> {
  project.provide('fleetPgUrl', '');
  project.provide('fleetPgError', '');
  if (process.env.STRATA_FLEET_PG_URL) {
    project.provide('fleetPgUrl', process.env.STRATA_FLEET_PG_URL);
    return () => {};
  }
  if (!fleetFilesSelected(process.argv)) return () => {};
  try {
    cluster = await startPostgres();
    project.provide('fleetPgUrl', cluster.url);
  } catch (err) {
    project.provide('fleetPgError', (err as Error).message);
  }
  return () => cluster?.stop();
}
