// Benchmark: the strata CLI against Debian's `ostree` on the same two real
// Debian root filesystems, in one run. JSON on stdout, progress on stderr.
//
//   node dist/bench/run.js commit [--rounds N] [--only commit|checkout|fsck[,...]]
//   node dist/bench/run.js deploy [--rounds N] [--kernel new|same]   (bench/deploy.ts)
//   node dist/bench/run.js pull [--rounds N]                          (bench/pull.ts)
//   node dist/bench/run.js compose [--rounds N]                       (bench/compose.ts)
//   node dist/bench/run.js fleet [--devices N] [--duration S] [--db sqlite|postgres|both]  (bench/fleet.ts)
//
// Every timed step is a whole process (`node bin/strata.js ...` or `ostree ...`),
// run under /usr/bin/time for its peak RSS. Caches stay warm for both tools; the
// tool that goes first alternates each round; setup and removal are untimed.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import {
  type Env, type Sample, type Target, type Tool, type Tree, TREES, MB, UsageError, addTarget, buildRootfs, checkEnvironment,
  describeEnvironment, findRepoRoot, fmtSample as fmt, gitState, log, median, ostreeVersion, r1, r3, ratio, rm, runSync, stats, timed, warmTree,
} from './common.js';
import { DEPLOY_USAGE, type KernelChoice, runDeployBench } from './deploy.js';
import { PULL_USAGE, runPullBench } from './pull.js';
import { FLEET_USAGE, runFleetBench } from './fleet.js';
import { COMPOSE_USAGE, runComposeBench } from './compose.js';

type Mode = 'archive' | 'bare-user';
type Part = 'commit' | 'checkout' | 'fsck';

const SUITES = ['commit', 'deploy', 'pull', 'compose', 'fleet'] as const;
const PARTS: readonly Part[] = ['commit', 'checkout', 'fsck'];
const MODES: readonly Mode[] = ['archive', 'bare-user'];
const BRANCH = 'bench';
const COMMIT_FLAGS = ['--no-bindings', '--timestamp=2024-01-01T00:00:00Z', '-s', 'bench', '-b', BRANCH];
const COMMIT_USAGE = 'commit [--rounds N] [--only commit|checkout|fsck[,...]]';

function lastChecksum(stdout: string, what: string): string {
  const line = stdout.trim().split('\n').pop() ?? '';
  if (!/^[0-9a-f]{64}$/.test(line)) throw new Error(`${what} printed no commit checksum (got '${line.slice(0, 80)}')`);
  return line;
}

function duBytes(dir: string, cwd: string): number {
  return Number(runSync('du', ['-sb', dir], cwd).split('\t')[0]);
}

// ---------------------------------------------------------------- options

interface Options {
  suite: (typeof SUITES)[number];
  rounds: number;
  /** commit suite: which parts run. */
  parts: Set<Part>;
  /** deploy suite: whether rootfs-b brings a new kernel. */
  kernel: KernelChoice;
  /** fleet suite */
  devices: number;
  durationS: number;
  dialects: ('sqlite' | 'postgres')[];
}

const USAGE = `usage: node dist/bench/run.js ${COMMIT_USAGE}
       node dist/bench/run.js ${DEPLOY_USAGE}
       node dist/bench/run.js ${PULL_USAGE}
       node dist/bench/run.js ${COMPOSE_USAGE}
       node dist/bench/run.js ${FLEET_USAGE}`;

function parseOptions(argv: string[]): Options {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        rounds: { type: 'string' }, only: { type: 'string' }, kernel: { type: 'string' }, devices: { type: 'string' }, duration: { type: 'string' }, db: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}; ${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  const suite = positionals[0] ?? 'commit';
  if (!(SUITES as readonly string[]).includes(suite)) throw new UsageError(`unknown suite '${suite}'; suites: ${SUITES.join(', ')}`);
  if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}'`);
  const rounds = values.rounds === undefined ? (suite === 'compose' ? 3 : 5) : Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new UsageError(`--rounds needs a whole number >= 1, got '${values.rounds}'`);
  if (suite !== 'commit' && values.only !== undefined) throw new UsageError(`--only belongs to the commit suite; usage: run.js ${COMMIT_USAGE}`);
  if (suite !== 'deploy' && values.kernel !== undefined) throw new UsageError(`--kernel belongs to the deploy suite; usage: run.js ${COMMIT_USAGE}`);
  const parts = new Set<Part>();
  for (const p of (values.only ?? PARTS.join(',')).split(',')) {
    if (!(PARTS as readonly string[]).includes(p)) throw new UsageError(`--only takes ${PARTS.join(', ')} (comma-separated), got '${p}'`);
    parts.add(p as Part);
  }
  const kernel = values.kernel ?? 'new';
  if (kernel !== 'new' && kernel !== 'same') throw new UsageError(`--kernel takes new or same, got '${kernel}'`);
  if (suite !== 'fleet' && (values.devices !== undefined || values.duration !== undefined || values.db !== undefined)) throw new UsageError(`--devices, --duration and --db belong to the fleet suite; usage: run.js ${FLEET_USAGE}`);
  const devices = Number(values.devices ?? 100_000);
  if (!Number.isInteger(devices) || devices < 1000) throw new UsageError(`--devices needs a whole number >= 1000, got '${values.devices}'`);
  const durationS = Number(values.duration ?? 10);
  if (!Number.isInteger(durationS) || durationS < 1) throw new UsageError(`--duration needs whole seconds >= 1, got '${values.duration}'`);
  const db = values.db ?? 'both';
  if (db !== 'sqlite' && db !== 'postgres' && db !== 'both') throw new UsageError(`--db takes sqlite, postgres or both, got '${db}'`);
  const dialects: Options['dialects'] = db === 'both' ? ['sqlite', 'postgres'] : [db];
  return { suite: suite as Options['suite'], rounds, parts, kernel, devices, durationS, dialects };
}

// ---------------------------------------------------------------- the tools, as a user runs them

class Runner {
  private n = 0;
  constructor(private readonly env: Env) {}

  private argv(tool: Tool, args: { strata: string[]; ostree: string[] }): [string, string[]] {
    return tool === 'strata' ? [this.env.strataArgv[0], [...this.env.strataArgv.slice(1), ...args.strata]] : [this.env.ostree, args.ostree];
  }

  private rssFile(): string {
    return path.join(this.env.work, `rss-${++this.n}`);
  }

  init(tool: Tool, repo: string, mode: Mode): void {
    const [cmd, args] = this.argv(tool, { strata: ['init', '--repo', repo, '--mode', mode], ostree: ['init', `--repo=${repo}`, `--mode=${mode}`] });
    runSync(cmd, args, this.env.root);
  }

  async commit(tool: Tool, repo: string, tree: Tree): Promise<{ sample: Sample; checksum: string }> {
    const src = this.env.trees[tree];
    const [cmd, args] = this.argv(tool, {
      strata: ['commit', '--repo', repo, ...COMMIT_FLAGS, src],
      ostree: ['commit', `--repo=${repo}`, ...COMMIT_FLAGS, src],
    });
    const sample = await timed(cmd, args, this.env.root, this.rssFile());
    return { sample, checksum: lastChecksum(sample.stdout, `${tool} commit`) };
  }

  checkout(tool: Tool, repo: string, dest: string): Promise<Sample> {
    const [cmd, args] = this.argv(tool, {
      strata: ['checkout', '--repo', repo, BRANCH, dest],
      ostree: ['checkout', `--repo=${repo}`, '-U', '-H', BRANCH, dest],
    });
    return timed(cmd, args, this.env.root, this.rssFile());
  }

  fsck(tool: Tool, repo: string): Promise<Sample> {
    const [cmd, args] = this.argv(tool, { strata: ['fsck', '--repo', repo], ostree: ['fsck', `--repo=${repo}`] });
    return timed(cmd, args, this.env.root, this.rssFile());
  }
}

// ---------------------------------------------------------------- the suite

type PerTool<T> = Record<Tool, T>;
const perTool = <T>(f: () => T): PerTool<T> => ({ strata: f(), ostree: f() });

interface Collected {
  commit: Record<Mode, Record<Tree, PerTool<Sample[]>>>;
  checksums: Record<Mode, Record<Tree, PerTool<string[]>>>;
  repoBytes: Record<Mode, PerTool<number[]>>;
  checkout: PerTool<Sample[]>;
  fsck: Record<Mode, PerTool<Sample[]>>;
}

function emptyCollected(): Collected {
  const byTree = <T>(f: () => T): Record<Tree, T> => ({ 'rootfs-a': f(), 'rootfs-b': f() });
  const byMode = <T>(f: () => T): Record<Mode, T> => ({ archive: f(), 'bare-user': f() });
  return {
    commit: byMode(() => byTree(() => perTool((): Sample[] => []))),
    checksums: byMode(() => byTree(() => perTool((): string[] => []))),
    repoBytes: byMode(() => perTool((): number[] => [])),
    checkout: perTool((): Sample[] => []),
    fsck: byMode(() => perTool((): Sample[] => [])),
  };
}

function repoPath(env: Env, dir: string, tool: Tool, mode: Mode): string {
  return path.join(env.work, dir, `${tool}-${mode}`);
}

async function runSuite(env: Env, opts: Options): Promise<Collected> {
  const run = new Runner(env);
  const c = emptyCollected();
  let shared: string | null = null; // repos made once when the commit part is not run

  // Without the commit part, checkout and fsck use repos made once, untimed.
  if (!opts.parts.has('commit')) {
    log('making repos for checkout/fsck (untimed)');
    shared = 'repos';
    for (const mode of MODES)
      for (const tool of ['strata', 'ostree'] as const) {
        const repo = repoPath(env, shared, tool, mode);
        fs.mkdirSync(path.dirname(repo), { recursive: true });
        run.init(tool, repo, mode);
        for (const tree of TREES) await run.commit(tool, repo, tree);
      }
  }

  for (let round = 0; round < opts.rounds; round++) {
    const order: Tool[] = round % 2 === 0 ? ['strata', 'ostree'] : ['ostree', 'strata'];
    const tag = `[round ${round + 1}/${opts.rounds}, ${order[0]} first]`;
    const dir = shared ?? `round-${round + 1}`;

    if (opts.parts.has('commit')) {
      for (const mode of MODES) {
        for (const tool of order) {
          const repo = repoPath(env, dir, tool, mode);
          rm(repo);
          fs.mkdirSync(path.dirname(repo), { recursive: true });
          run.init(tool, repo, mode);
        }
        for (const tree of TREES) {
          const line: string[] = [];
          for (const tool of order) {
            const { sample, checksum } = await run.commit(tool, repoPath(env, dir, tool, mode), tree);
            c.commit[mode][tree][tool].push(sample);
            c.checksums[mode][tree][tool].push(checksum);
            line.push(`${tool} ${fmt(sample)}`);
          }
          log(`${tag} commit ${mode} ${tree}: ${line.join(', ')}`);
        }
        for (const tool of order) c.repoBytes[mode][tool].push(duBytes(path.join(repoPath(env, dir, tool, mode), 'objects'), env.root));
      }
    }

    if (opts.parts.has('checkout')) {
      const line: string[] = [];
      for (const tool of order) {
        const dest = path.join(env.work, `checkout-${tool}`);
        rm(dest);
        const sample = await run.checkout(tool, repoPath(env, dir, tool, 'bare-user'), dest);
        rm(dest);
        c.checkout[tool].push(sample);
        line.push(`${tool} ${fmt(sample)}`);
      }
      log(`${tag} checkout bare-user rootfs-b: ${line.join(', ')}`);
    }

    if (opts.parts.has('fsck')) {
      for (const mode of MODES) {
        const line: string[] = [];
        for (const tool of order) {
          const sample = await run.fsck(tool, repoPath(env, dir, tool, mode));
          c.fsck[mode][tool].push(sample);
          line.push(`${tool} ${fmt(sample)}`);
        }
        log(`${tag} fsck ${mode}: ${line.join(', ')}`);
      }
    }

    if (!shared) rm(path.join(env.work, dir));
  }
  return c;
}

// ---------------------------------------------------------------- report

function report(c: Collected, opts: Options): { results: Record<string, unknown>; targets: Target[] } {
  const results: Record<string, unknown> = {};
  const targets: Target[] = [];
  const target = (id: string, metric: string, value: number | null, op: '<=' | '<', limit: number): void => addTarget(targets, id, metric, value, op, limit);

  if (opts.parts.has('commit')) {
    const commit: Record<string, unknown> = {};
    for (const mode of MODES) {
      const m: Record<string, unknown> = {};
      const all = TREES.flatMap((t) => [...c.checksums[mode][t].strata, ...c.checksums[mode][t].ostree]);
      let same = true;
      for (const tree of TREES) {
        const s = c.commit[mode][tree].strata;
        const o = c.commit[mode][tree].ostree;
        const ids = [...c.checksums[mode][tree].strata, ...c.checksums[mode][tree].ostree];
        same &&= ids.every((x) => x === ids[0]);
        m[tree] = { strata: stats(s), ostree: stats(o), ratio: ratio(s, o), checksum: ids[0] };
        target(`${mode} commit ${tree}`, 'time strata/ostree', ratio(s, o), '<=', mode === 'archive' ? 0.6 : 1.0);
      }
      m.sameChecksum = same && all.length > 0;
      const bytes = c.repoBytes[mode];
      const sb = median(bytes.strata);
      const ob = median(bytes.ostree);
      m.repoSize = { what: 'du -sb objects/ after both commits', strataBytes: sb, ostreeBytes: ob, ratio: r3(sb / ob) };
      if (mode === 'archive') target('archive repo size', 'bytes strata/ostree', r3(sb / ob), '<=', 1.05);
      commit[mode] = m;
    }
    const peak = Math.max(...MODES.flatMap((mode) => c.commit[mode]['rootfs-b'].strata.map((s) => (s.maxRssKiB * 1024) / MB)));
    commit.peakMemory = {
      what: 'max RSS of `strata commit` of rootfs-b (on top of rootfs-a), worst over modes and rounds, MB = 10^6 bytes',
      strataMB: r1(peak),
      ostreeMB: r1(Math.max(...MODES.flatMap((mode) => c.commit[mode]['rootfs-b'].ostree.map((s) => (s.maxRssKiB * 1024) / MB)))),
    };
    target('commit rootfs-b peak memory', 'max RSS of strata, MB', r1(peak), '<', 300);
    results.commit = commit;
  }

  if (opts.parts.has('checkout')) {
    const { strata: s, ostree: o } = c.checkout;
    results.checkout = {
      what: 'rootfs-b from bare-user: strata checkout vs ostree checkout -U -H',
      strata: stats(s),
      ostree: stats(o),
      ratio: ratio(s, o),
    };
    target('checkout bare-user rootfs-b', 'time strata/ostree', ratio(s, o), '<=', 1.0);
  }

  if (opts.parts.has('fsck')) {
    const fsck: Record<string, unknown> = {};
    for (const mode of MODES) {
      const { strata: s, ostree: o } = c.fsck[mode];
      fsck[mode] = { strata: stats(s), ostree: stats(o), ratio: ratio(s, o) };
      target(`fsck ${mode}`, 'time strata/ostree', ratio(s, o), '<=', 0.7);
    }
    results.fsck = fsck;
  }
  return { results, targets };
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  const root = findRepoRoot();
  if (opts.suite === 'fleet') {
    // Needs neither ostree nor the rootfs pair.
    const out = await runFleetBench({ devices: opts.devices, durationS: opts.durationS, dialects: opts.dialects, root });
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return 0;
  }
  const base = checkEnvironment(root);
  const { cache, trees } = buildRootfs(root);
  if (opts.suite === 'deploy') {
    const out = await runDeployBench({ ...base, cache, trees }, { rounds: opts.rounds, kernel: opts.kernel });
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return 0;
  }
  if (opts.suite === 'compose') {
    const out = await runComposeBench({ ...base, cache, trees }, { rounds: opts.rounds });
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return 0;
  }
  if (opts.suite === 'pull') {
    const out = await runPullBench({ ...base, cache, trees }, { rounds: opts.rounds });
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return 0;
  }

  const scratch = process.env.STRATA_BENCH_DIR || path.join(root, '.bench');
  fs.mkdirSync(scratch, { recursive: true });
  const work = fs.mkdtempSync(path.join(scratch, 'run-'));
  const env: Env = { ...base, trees, work };
  const cleanup = (): void => rm(work);
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });

  try {
    log('warming the page cache with both trees and both programs (untimed)');
    const treeInfo = Object.fromEntries(TREES.map((t) => [t, { path: trees[t], ...warmTree(trees[t]) }]));
    const version = ostreeVersion(env.ostree, root);
    runSync(env.strataArgv[0], [...env.strataArgv.slice(1), '--version'], root);

    const started = new Date();
    const loadStart = os.loadavg();
    const strataState = gitState(root); // what dist/ was built from, as far as git knows
    const c = await runSuite(env, opts);
    const { results, targets } = report(c, opts);
    const out = {
      suite: opts.suite,
      rounds: opts.rounds,
      parts: PARTS.filter((p) => opts.parts.has(p)),
      startedAt: started.toISOString(),
      durationS: r1((Date.now() - started.getTime()) / 1000),
      method:
        'each step is one whole process (node bin/strata.js ... / ostree ...) under /usr/bin/time -f %M; wall time from spawn to exit; ' +
        'page cache warm for both, first tool alternates per round, fresh repos per round, setup and removal untimed; ' +
        'ratio = median(strata) / median(ostree)',
      commitFlags: COMMIT_FLAGS.join(' '),
      environment: describeEnvironment({ ostree: env.ostree, ostreeVersion: version, strata: strataState, loadStart, rootfsCache: cache, trees: treeInfo }),
      results,
      targets,
      allTargetsMet: targets.every((t) => t.met),
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return 0;
  } finally {
    cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`bench: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`bench: ${(err as Error).message ?? String(err)}\n`);
    process.exit(1);
  },
);
