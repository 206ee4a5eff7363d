// The `compose` suite: `strata compose` of a manifest whose base is a
// tarball of rootfs-b, against `ostree commit --tree=tar=` of the same
// tarball, both into fresh archive repos in one run; then a second compose
// of the unchanged manifest into the same repo (everything already stored),
// which the compose cache answers, and one with --no-cache, which builds the
// tree again and finds it equal to the ref's (reported, not a target).
//
//   node dist/bench/run.js compose [--rounds N]
//
// Setup (untimed), in one scratch directory: the tarball (GNU tar,
// --numeric-owner --xattrs, uncompressed) and the manifest. Every timed step
// is one whole process under /usr/bin/time (see common.ts), after `sync` and
// a pause; the tool that goes first alternates per round.
//
// Nothing a round made is deleted before the run ends: on a filesystem
// without a journal (ext4 here) the kernel skips inodes freed in the last
// minutes when it allocates new ones (recently_deleted(): 60 s once the
// inode table is written back, 360 s while it is dirty), so removing a
// repo's thousands of files just before a timed step made the step after
// it up to twice as slow, for either tool.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  type Env, type Sample, type Target, addTarget, describeEnvironment, fmtSample, gitState, log, median, ostreeVersion, r1, r3, ratio, rm, runSync, settle, stats, timed,
} from './common.js';

export const COMPOSE_USAGE = 'compose [--rounds N]';

const SETTLE_MS = 1500;
const REF = 'bench/compose';
const TIMESTAMP = '2024-01-01T00:00:00Z';

export interface ComposeBenchContext extends Omit<Env, 'trees' | 'work'> {
  cache: string;
  trees: Env['trees'];
}

interface ComposeReport {
  commit: string;
  unchanged: boolean;
  cache: { state: string };
}

export async function runComposeBench(ctx: ComposeBenchContext, opts: { rounds: number }): Promise<Record<string, unknown>> {
  const scratch = process.env.STRATA_BENCH_DIR || '/var/tmp';
  fs.mkdirSync(scratch, { recursive: true });
  const work = fs.mkdtempSync(path.join(scratch, 'strata-bench-compose-'));
  process.once('SIGINT', () => {
    rm(work);
    process.exit(130);
  });
  let n = 0;
  const rss = () => path.join(work, `rss-${++n}`);
  const strata = (args: string[]): [string, string[]] => [ctx.strataArgv[0], [...ctx.strataArgv.slice(1), ...args]];
  try {
    const tarball = path.join(work, 'rootfs-b.tar');
    log(`making ${tarball} from ${ctx.trees['rootfs-b']} (untimed)`);
    runSync('tar', ['--numeric-owner', '--xattrs', '--xattrs-include=*', '-C', ctx.trees['rootfs-b'], '-cf', tarball, '.'], ctx.root);
    const manifest = path.join(work, 'manifest.yaml');
    fs.writeFileSync(manifest, `ref: ${REF}\ntimestamp: ${TIMESTAMP}\nsubject: bench\nbase:\n  tar: ${tarball}\n`);

    const composeArgv = (repo: string, ...flags: string[]) => strata(['compose', manifest, '--repo', repo, '--json', ...flags]);
    const ostreeArgv = (repo: string): [string, string[]] => [ctx.ostree, ['commit', `--repo=${repo}`, `--tree=tar=${tarball}`, '-b', REF, `--timestamp=${TIMESTAMP}`, '-s', 'bench']];
    const fresh = (tool: 'strata' | 'ostree', name: string): string => {
      const repo = path.join(work, name);
      rm(repo);
      if (tool === 'strata') runSync(...strata(['init', '--repo', repo, '--mode', 'archive']), ctx.root);
      else runSync(ctx.ostree, ['init', `--repo=${repo}`, '--mode=archive'], ctx.root);
      return repo;
    };
    const parse = (s: Sample): ComposeReport => JSON.parse(s.stdout) as ComposeReport;

    log('warming the page cache and both programs (one untimed run each)');
    runSync('sh', ['-c', 'cat "$0" > /dev/null', tarball], ctx.root);
    runSync(...composeArgv(fresh('strata', 'warm-s')), ctx.root);
    runSync(...ostreeArgv(fresh('ostree', 'warm-o')), ctx.root);

    const started = new Date();
    const loadStart = os.loadavg();
    const loadSamples: number[] = [];
    const first: Sample[] = [];
    const second: Sample[] = [];
    const rebuilt: Sample[] = [];
    const ostree: Sample[] = [];
    const commits = new Set<string>();
    for (let round = 0; round < opts.rounds; round++) {
      const strataFirst = round % 2 === 0;
      const tag = `[round ${round + 1}/${opts.rounds}, ${strataFirst ? 'strata' : 'ostree'} first]`;
      const sRepo = fresh('strata', `s-${round}`);
      const oRepo = fresh('ostree', `o-${round}`);
      for (const tool of strataFirst ? ['strata', 'ostree'] : ['ostree', 'strata']) {
        await settle(SETTLE_MS);
        loadSamples.push(os.loadavg()[0]);
        if (tool === 'strata') {
          const s = await timed(...composeArgv(sRepo), ctx.root, rss());
          const r = parse(s);
          if (r.unchanged) throw new Error('the first compose into a fresh repo reported unchanged');
          commits.add(r.commit);
          first.push(s);
          log(`${tag} strata compose: ${fmtSample(s)}`);
        } else {
          const s = await timed(...ostreeArgv(oRepo), ctx.root, rss());
          ostree.push(s);
          log(`${tag} ostree commit --tree=tar: ${fmtSample(s)}`);
        }
      }
      await settle(SETTLE_MS);
      const s = await timed(...composeArgv(sRepo), ctx.root, rss());
      const r = parse(s);
      if (!r.unchanged || !commits.has(r.commit) || r.cache.state !== 'hit') throw new Error(`the second compose was not unchanged from the cache (${r.commit}, ${r.cache.state})`);
      second.push(s);
      log(`${tag} strata compose again (unchanged): ${fmtSample(s)}`);
      await settle(SETTLE_MS);
      const nc = await timed(...composeArgv(sRepo, '--no-cache'), ctx.root, rss());
      const rn = parse(nc);
      if (!rn.unchanged || !commits.has(rn.commit)) throw new Error(`the --no-cache compose was not unchanged (${rn.commit})`);
      rebuilt.push(nc);
      log(`${tag} strata compose --no-cache (unchanged, tree built and compared): ${fmtSample(nc)}`);
    }
    if (commits.size !== 1) throw new Error(`strata compose gave ${commits.size} different commits for one manifest`);

    const targets: Target[] = [];
    const firstVsOstree = ratio(first, ostree);
    const secondVsFirst = r3(median(second.map((x) => x.seconds)) / median(first.map((x) => x.seconds)));
    const rebuiltVsFirst = r3(median(rebuilt.map((x) => x.seconds)) / median(first.map((x) => x.seconds)));
    addTarget(targets, 'compose rootfs-b tarball vs ostree commit --tree=tar', 'time strata/ostree', firstVsOstree, '<=', 0.8);
    addTarget(targets, 'second compose, unchanged', 'time second/first', secondVsFirst, '<', 0.25);
    return {
      suite: 'compose',
      rounds: opts.rounds,
      startedAt: started.toISOString(),
      durationS: r1((Date.now() - started.getTime()) / 1000),
      method:
        'each step is one whole process (node bin/strata.js compose M --repo R --json / ostree commit --tree=tar=T) under /usr/bin/time -f %M; ' +
        'wall time from spawn to exit; fresh archive repos per round, none deleted before the run ends; sync and a 1.5 s pause before each step; first tool alternates per round; ' +
        'the second compose runs into the repo the first one filled and is answered by the compose cache (inputs hashed, equal to the recorded ones); ' +
        'then compose --no-cache builds the tree again and finds it equal (not a target, for comparison); ratios are of medians',
      tarball: { bytes: fs.statSync(tarball).size, made: 'tar --numeric-owner --xattrs --xattrs-include=* -C rootfs-b -cf rootfs-b.tar .' },
      manifest: fs.readFileSync(manifest, 'utf8').replace(tarball, 'rootfs-b.tar'),
      strataCommit: [...commits][0],
      environment: {
        ...describeEnvironment({ ostree: ctx.ostree, ostreeVersion: ostreeVersion(ctx.ostree, ctx.root), strata: gitState(ctx.root), loadStart, rootfsCache: ctx.cache, trees: { 'rootfs-b': ctx.trees['rootfs-b'] } }),
        loadavg1BeforeSteps: { min: r1(Math.min(...loadSamples)), median: r1(median(loadSamples)), max: r1(Math.max(...loadSamples)) },
      },
      results: {
        composeFirst: stats(first),
        ostreeCommitTar: stats(ostree),
        composeSecond: stats(second),
        composeSecondNoCache: stats(rebuilt),
        ratioFirstToOstree: firstVsOstree,
        ratioSecondToFirst: secondVsFirst,
        ratioSecondNoCacheToFirst: rebuiltVsFirst,
      },
      targets,
      allTargetsMet: targets.every((t) => t.met),
    };
  } finally {
    rm(work);
  }
}
