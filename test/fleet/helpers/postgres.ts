// The throwaway PostgreSQL cluster lives with the benchmark, which needs it too.
export { createDatabase, startPostgres, type PgCluster } from '../../../bench/pg-cluster.js';
