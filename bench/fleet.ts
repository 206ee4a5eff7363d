// Benchmark of the fleet server: 100,000 devices enrolled in bulk, then
// autocannon against GET /v1/device/next with a different device token on
// each request, for SQLite and PostgreSQL, and a bare Fastify route in the
// same run as the ceiling; then the 10,000-device rollout simulation with 3%
// failures, which must pause before its second wave completes.
//
//   node dist/bench/run.js fleet [--devices N] [--duration S] [--db sqlite|postgres|both]

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { openDb, type FleetDb } from '../src/fleet/db.js';
import { migrate } from '../src/fleet/migrations.js';
import { createRollout } from '../src/fleet/rollouts.js';
import { type Target, gitState, log, r1 } from './common.js';
import { SIM_C1, bulkEnroll, simReleases, simulateRollout } from './fleet-sim.js';
import { createDatabase, startPostgres, type PgCluster } from './pg-cluster.js';

export const FLEET_USAGE = 'fleet [--devices N] [--duration S] [--db sqlite|postgres|both]';

export interface FleetBenchOptions {
  devices: number;
  durationS: number;
  dialects: ('sqlite' | 'postgres')[];
  root: string;
}

interface LoadResult {
  reqPerS: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  requests: number;
  non2xx: number;
  errors: number;
  answers?: Record<string, number>;
}

const CONNECTIONS = 50;

async function startChild(args: string[]): Promise<{ url: string; child: ChildProcess }> {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fleet-child.js');
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const rl = createInterface({ input: child.stdout! });
  const line = await new Promise<string>((resolve, reject) => {
    rl.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the benchmark server exited (${code}) before listening`)));
  });
  return { url: (JSON.parse(line) as { url: string }).url, child };
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

async function load(url: string, tokens: string[], durationS: number): Promise<LoadResult> {
  let i = 0;
  const res = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: durationS,
    requests: [
      {
        method: 'GET',
        path: '/v1/device/next',
        // A different device on every request: no device's rows stay hot by repetition.
        setupRequest: (req) => ({ ...req, headers: { ...(req.headers ?? {}), authorization: `Bearer ${tokens[i++ % tokens.length]}` } }),
      },
    ],
  });
  return {
    reqPerS: Math.round(res.requests.average),
    p50Ms: res.latency.p50,
    p99Ms: res.latency.p99,
    maxMs: res.latency.max,
    requests: res.requests.total,
    non2xx: res.non2xx,
    errors: res.errors,
  };
}

/** Counts of next answers for a sample of devices (what the load consisted of). */
async function sampleAnswers(url: string, tokens: string[], n: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (let k = 0; k < n; k++) {
    const r = await fetch(`${url}/v1/device/next`, { headers: { authorization: `Bearer ${tokens[(k * 7919) % tokens.length]}` } });
    const j = (await r.json()) as { action: string; reason?: string };
    const key = j.action === 'deploy' ? 'deploy' : `none:${j.reason}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

async function prepare(fdb: FleetDb, devices: number): Promise<{ tokens: string[]; enrollS: number }> {
  await migrate(fdb);
  const now = new Date();
  const t0 = Date.now();
  const devs = await bulkEnroll(fdb, { n: devices, group: 'bench', commit: SIM_C1, now });
  const enrollS = (Date.now() - t0) / 1000;
  const { rel2 } = await simReleases(fdb, 'bench', now);
  // A rollout in its first wave (1%): most devices hear not-in-wave, the
  // first 200 of the wave take an update slot, the rest of it hear concurrency.
  await createRollout(
    fdb,
    { releaseId: rel2, group: 'bench', waves: [1, 10, 50, 100].map((percent) => ({ percent, soakSeconds: 3600 })), maxConcurrent: 200, window: null, failureThreshold: 0.05, graceSeconds: 86400 },
    'bench',
    now,
  );
  return { tokens: devs.map((d) => d.token), enrollS };
}

export async function runFleetBench(opts: FleetBenchOptions): Promise<Record<string, unknown>> {
  const started = new Date();
  const loadStart = os.loadavg();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-fleet-bench-'));
  const targets: Target[] = [];
  const atLeast = (id: string, metric: string, value: number, limit: number): void => {
    targets.push({ id, metric, value, target: `>= ${limit}`, met: value >= limit });
  };
  const below = (id: string, metric: string, value: number, limit: number): void => {
    targets.push({ id, metric, value, target: `< ${limit}`, met: value < limit });
  };
  const results: Record<string, unknown> = {};
  let cluster: PgCluster | null = null;
  try {
    log(`bare Fastify route, ${opts.durationS}s, ${CONNECTIONS} connections`);
    const bare = await startChild(['bare']);
    const bareRes = await load(bare.url, ['x'.repeat(43)], opts.durationS);
    await stopChild(bare.child);
    results.bare = bareRes;

    for (const dialect of opts.dialects) {
      let url: string;
      if (dialect === 'sqlite') url = `sqlite:${path.join(work, 'fleet.db')}`;
      else {
        log('starting a PostgreSQL cluster');
        cluster ??= await startPostgres();
        url = (await createDatabase(cluster.url)).url;
      }
      const fdb = await openDb(url);
      log(`${dialect}: enrolling ${opts.devices} devices in bulk`);
      const { tokens, enrollS } = await prepare(fdb, opts.devices);
      await fdb.close();
      const server = await startChild(['fleet', url]);
      log(`${dialect}: GET /v1/device/next, ${opts.durationS}s, ${CONNECTIONS} connections, ${tokens.length} tokens in rotation`);
      await load(server.url, tokens.slice(0, 2000), 2); // warm-up
      const res = await load(server.url, tokens, opts.durationS);
      res.answers = await sampleAnswers(server.url, tokens, 500);
      await stopChild(server.child);
      const ratio = Math.round((res.reqPerS / Math.max(1, bareRes.reqPerS)) * 1000) / 1000;
      results[dialect] = { bulkEnrollS: r1(enrollS), devices: opts.devices, ...res, ratioToBare: ratio };
      atLeast(`next ${dialect} throughput`, 'req/s', res.reqPerS, 5000);
      below(`next ${dialect} p99`, 'ms', res.p99Ms, 50);
    }

    for (const dialect of opts.dialects) {
      log(`${dialect}: 10,000-device rollout simulation with 3% failures`);
      const url = dialect === 'sqlite' ? `sqlite:${path.join(work, 'sim.db')}` : (await createDatabase(cluster!.url)).url;
      const fdb = await openDb(url);
      await migrate(fdb);
      const sim = await simulateRollout(fdb, { devices: 10_000, failureShare: 0.03, seed: 42, threshold: 0.02 });
      await fdb.close();
      results[`simulation-${dialect}`] = sim;
      targets.push({ id: `simulation ${dialect}`, metric: 'paused before the second wave completed', value: sim.pausedBeforeSecondWaveCompleted ? 1 : 0, target: '= 1', met: sim.pausedBeforeSecondWaveCompleted });
    }
  } finally {
    cluster?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
  return {
    suite: 'fleet',
    startedAt: started.toISOString(),
    durationS: r1((Date.now() - started.getTime()) / 1000),
    method:
      `server in a child process (node, the fleet app built by buildApp), autocannon in the parent over loopback, ${CONNECTIONS} connections, ` +
      `${opts.durationS}s per run after a 2s warm-up, a different device token on each request; devices in one group with a rollout in its first wave (1%, 200 slots); ` +
      'bare = a Fastify route answering a constant, same settings; simulation = in-process calls of the server functions',
    environment: {
      node: process.version,
      strata: gitState(opts.root),
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      loadavgStart: loadStart.map((x) => Math.round(x * 100) / 100),
      loadavgEnd: os.loadavg().map((x) => Math.round(x * 100) / 100),
      note: 'the machine is shared with other engineers; the load average says how busy it was',
    },
    results,
    targets,
    allTargetsMet: targets.every((t) => t.met),
  };
}
