// The `deploy` suite: `strata admin deploy` against `ostree admin deploy`,
// deploying rootfs-b over rootfs-a in a directory sysroot, on the same
// commits; plus `strata admin verify` of the new deployment.
//
//   node dist/bench/run.js deploy [--rounds N] [--kernel new|same]
//
// Setup (untimed), under one scratch directory: both trees in OSTree's layout
// (/etc moved to /usr/etc, a kernel and initramfs in usr/lib/modules), a
// strata sysroot with both commits, two ostree sysroots that pull-local the
// same commits, and rootfs-a deployed in each. A round deploys rootfs-b with
// each tool (one timed process each), verifies it with strata (timed), then
// undeploys it everywhere (untimed) so the next round starts from the same
// state. The deployment comparison alternates which tool goes first.

import { spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  type Env, type Sample, type Target, type Tree, MB, TREES, addTarget, describeEnvironment, fmtSample, gitState, log, median,
  ostreeVersion, r1, r3, ratio, rm, runSync, settle, stats, timed, warmTree,
} from './common.js';

export type KernelChoice = 'new' | 'same';
export const DEPLOY_USAGE = 'deploy [--rounds N] [--kernel new|same]';

const STATEROOT = 'debian';
const KVER = '6.1.0-bench';
const KERNEL_BYTES = 8_000_000;
const INITRAMFS_BYTES = 20_000_000;
/** Pause after `sync` before each timed step (see settle()). */
const SETTLE_MS = 1500;
/**
 * Branch names for the two commits. Not `a` and `b`: ostree reads a short
 * hex string as an abbreviated checksum first, so `ostree rev-parse a` (and
 * `admin deploy a`) can pick any commit whose checksum starts with `a`.
 */
const REF: Record<Tree, string> = { 'rootfs-a': 'rootfs-a', 'rootfs-b': 'rootfs-b' };
const VERSION: Record<Tree, string> = { 'rootfs-a': 'a', 'rootfs-b': 'b' };
const TIMESTAMP = '2024-01-01T00:00:00Z';

/**
 * Who deploys. `ostree` is the command as a user runs it (it prunes the repo
 * when done); `ostree-no-prune` is the same with --no-prune, in a sysroot of
 * its own, to show what pruning costs ostree. strata's deploy never prunes.
 */
type Deployer = 'strata' | 'ostree' | 'ostree-no-prune';

export interface DeployBenchContext extends Omit<Env, 'trees' | 'work'> {
  cache: string;
  trees: Record<Tree, string>;
}

interface Layout {
  work: string;
  trees: Record<Tree, string>;
  sysroot: Record<Deployer, string>;
}

// ---------------------------------------------------------------- setup

/** Deterministic pseudo-random bytes: AES-256-CTR keystream over zeros, keyed by `seed`. */
function writePseudoRandom(file: string, bytes: number, seed: string): void {
  const key = createHash('sha256').update(`strata-bench:${seed}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(1 << 20);
  const fd = fs.openSync(file, 'w', 0o644);
  try {
    for (let left = bytes; left > 0; left -= zeros.length) fs.writeSync(fd, cipher.update(zeros.subarray(0, Math.min(left, zeros.length))));
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A deployable copy of a cached rootfs: hardlinks (cheap, and nothing here
 * writes into a linked file), /etc moved to /usr/etc, and a kernel plus
 * initramfs where OSTree looks for them.
 */
function prepareTree(src: string, dest: string, kernelSeed: string, link: boolean, cwd: string): void {
  runSync('cp', [link ? '-al' : '-a', src, dest], cwd);
  if (fs.existsSync(path.join(dest, 'usr/etc'))) throw new Error(`${src} already has usr/etc; expected a plain Debian tree`);
  fs.renameSync(path.join(dest, 'etc'), path.join(dest, 'usr/etc'));
  const kdir = path.join(dest, 'usr/lib/modules', KVER);
  fs.mkdirSync(kdir, { recursive: true, mode: 0o755 });
  writePseudoRandom(path.join(kdir, 'vmlinuz'), KERNEL_BYTES, `vmlinuz-${kernelSeed}`);
  writePseudoRandom(path.join(kdir, 'initramfs.img'), INITRAMFS_BYTES, `initramfs-${kernelSeed}`);
}

function bootChecksum(tree: string): string {
  const h = createHash('sha256');
  for (const f of ['vmlinuz', 'initramfs.img']) h.update(fs.readFileSync(path.join(tree, 'usr/lib/modules', KVER, f)));
  return h.digest('hex');
}

function deploymentDir(sysroot: string, commit: string): string {
  return path.join(sysroot, 'ostree/deploy', STATEROOT, 'deploy', `${commit}.0`);
}

/**
 * ostree makes each deployment's top directory immutable (chattr +i), so
 * `rm -rf` cannot remove it until the flag is cleared.
 */
function removeScratch(work: string): void {
  for (const sysroot of fs.existsSync(work) ? fs.readdirSync(work) : []) {
    const deployRoot = path.join(work, sysroot, 'ostree/deploy');
    if (!fs.existsSync(deployRoot)) continue;
    for (const stateroot of fs.readdirSync(deployRoot)) {
      const dir = path.join(deployRoot, stateroot, 'deploy');
      for (const name of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
        const p = path.join(dir, name);
        if (fs.lstatSync(p).isDirectory()) spawnSync('chattr', ['-i', p], { stdio: 'ignore' });
      }
    }
  }
  rm(work);
}

// ---------------------------------------------------------------- the tools, as a user runs them

class Deployers {
  private n = 0;
  constructor(
    private readonly ctx: DeployBenchContext,
    private readonly layout: Layout,
  ) {}

  private strata(args: string[]): [string, string[]] {
    return [this.ctx.strataArgv[0], [...this.ctx.strataArgv.slice(1), ...args]];
  }

  private rssFile(): string {
    return path.join(this.layout.work, `rss-${++this.n}`);
  }

  private deployArgv(who: Deployer, rev: string): [string, string[]] {
    const s = this.layout.sysroot[who];
    if (who === 'strata') return this.strata(['admin', 'deploy', rev, '--sysroot', s, '--os', STATEROOT]);
    const extra = who === 'ostree-no-prune' ? ['--no-prune'] : [];
    return [this.ctx.ostree, ['admin', 'deploy', `--sysroot=${s}`, `--os=${STATEROOT}`, ...extra, rev]];
  }

  deployUntimed(who: Deployer, rev: string): void {
    runSync(...this.deployArgv(who, rev), this.ctx.root);
  }

  deploy(who: Deployer, rev: string): Promise<Sample> {
    const [cmd, args] = this.deployArgv(who, rev);
    return timed(cmd, args, this.ctx.root, this.rssFile());
  }

  verify(): Promise<Sample> {
    const [cmd, args] = this.strata(['admin', 'verify', '0', '--sysroot', this.layout.sysroot.strata]);
    return timed(cmd, args, this.ctx.root, this.rssFile());
  }

  /** Removes deployment 0 (the one just deployed), untimed. */
  undeploy(who: Deployer): void {
    const s = this.layout.sysroot[who];
    if (who === 'strata') runSync(...this.strata(['admin', 'undeploy', '0', '--sysroot', s]), this.ctx.root);
    else runSync(this.ctx.ostree, ['admin', 'undeploy', `--sysroot=${s}`, '0'], this.ctx.root);
  }

  revParse(who: Deployer, ref: string): string {
    const repo = path.join(this.layout.sysroot[who], 'ostree/repo');
    const out = who === 'strata' ? runSync(...this.strata(['rev-parse', '--repo', repo, ref]), this.ctx.root) : runSync(this.ctx.ostree, ['rev-parse', `--repo=${repo}`, ref], this.ctx.root);
    return out.trim();
  }

  /** The strata sysroot with both commits; then each ostree sysroot pulls the same commits. */
  makeSysroots(): Record<Tree, string> {
    const { root } = this.ctx;
    const s1 = this.layout.sysroot.strata;
    runSync(...this.strata(['admin', 'init-fs', s1]), root);
    runSync(...this.strata(['admin', 'os-init', STATEROOT, '--sysroot', s1]), root);
    for (const tree of TREES) {
      const args = ['commit', '--repo', path.join(s1, 'ostree/repo'), '-b', REF[tree], `--timestamp=${TIMESTAMP}`, '--add-metadata-string', `version=${VERSION[tree]}`, this.layout.trees[tree]];
      runSync(...this.strata(args), root);
    }
    for (const who of ['ostree', 'ostree-no-prune'] as const) {
      const s = this.layout.sysroot[who];
      fs.mkdirSync(s);
      runSync(this.ctx.ostree, ['admin', 'init-fs', s], root);
      runSync(this.ctx.ostree, ['admin', 'os-init', STATEROOT, `--sysroot=${s}`], root);
      runSync(this.ctx.ostree, ['--repo=' + path.join(s, 'ostree/repo'), 'pull-local', path.join(s1, 'ostree/repo'), REF['rootfs-a'], REF['rootfs-b']], root);
    }
    return { 'rootfs-a': this.revParse('strata', REF['rootfs-a']), 'rootfs-b': this.revParse('strata', REF['rootfs-b']) };
  }
}

// ---------------------------------------------------------------- the suite

const DEPLOYERS: readonly Deployer[] = ['strata', 'ostree', 'ostree-no-prune'];

/** strata and ostree alternate first and last; the no-prune variant runs between them. */
function roundOrder(round: number): Deployer[] {
  return round % 2 === 0 ? ['strata', 'ostree-no-prune', 'ostree'] : ['ostree', 'ostree-no-prune', 'strata'];
}

function expectDeployment(sysroot: string, commit: string, present: boolean, after: string): void {
  if (fs.existsSync(deploymentDir(sysroot, commit)) !== present) {
    throw new Error(`after ${after}, ${deploymentDir(sysroot, commit)} ${present ? 'is missing' : 'is still there'}`);
  }
}

export async function runDeployBench(ctx: DeployBenchContext, opts: { rounds: number; kernel: KernelChoice }): Promise<Record<string, unknown>> {
  const scratch = process.env.STRATA_BENCH_DIR || '/var/tmp';
  fs.mkdirSync(scratch, { recursive: true });
  const work = fs.mkdtempSync(path.join(scratch, 'strata-bench-deploy-'));
  const cleanup = (): void => removeScratch(work);
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  const layout: Layout = {
    work,
    trees: { 'rootfs-a': path.join(work, 'tree-a'), 'rootfs-b': path.join(work, 'tree-b') },
    sysroot: { strata: path.join(work, 'sysroot-strata'), ostree: path.join(work, 'sysroot-ostree'), 'ostree-no-prune': path.join(work, 'sysroot-ostree-no-prune') },
  };
  const run = new Deployers(ctx, layout);

  try {
    // Hardlinked trees need the scratch directory on the cache's filesystem.
    const link = fs.statSync(work).dev === fs.statSync(ctx.cache).dev;
    log(`preparing both trees in ${work} (${link ? 'cp -al' : 'cp -a: the scratch directory is not on the rootfs cache filesystem'}), kernel: ${opts.kernel}`);
    prepareTree(ctx.trees['rootfs-a'], layout.trees['rootfs-a'], 'a', link, ctx.root);
    prepareTree(ctx.trees['rootfs-b'], layout.trees['rootfs-b'], opts.kernel === 'new' ? 'b' : 'a', link, ctx.root);
    const treeInfo = Object.fromEntries(TREES.map((t) => [t, { path: layout.trees[t], bootcsum: bootChecksum(layout.trees[t]), ...warmTree(layout.trees[t]) }]));

    log('making the strata sysroot (init-fs, os-init, commit a and b) and the ostree sysroots (init-fs, os-init, pull-local)');
    const commits = run.makeSysroots();
    for (const who of DEPLOYERS) {
      const got = { 'rootfs-a': run.revParse(who, REF['rootfs-a']), 'rootfs-b': run.revParse(who, REF['rootfs-b']) };
      if (got['rootfs-a'] !== commits['rootfs-a'] || got['rootfs-b'] !== commits['rootfs-b']) {
        throw new Error(`the ${who} sysroot has a=${got['rootfs-a']} b=${got['rootfs-b']}, the strata one a=${commits['rootfs-a']} b=${commits['rootfs-b']}`);
      }
    }

    log('deploying rootfs-a everywhere, then one untimed round of rootfs-b (warms caches and both programs)');
    for (const who of DEPLOYERS) run.deployUntimed(who, REF['rootfs-a']);
    for (const who of DEPLOYERS) run.deployUntimed(who, REF['rootfs-b']);
    await run.verify();
    for (const who of DEPLOYERS) run.undeploy(who);

    const started = new Date();
    const loadStart = os.loadavg();
    const strataState = gitState(ctx.root);
    const samples: Record<Deployer, Sample[]> = { strata: [], ostree: [], 'ostree-no-prune': [] };
    const verify: Sample[] = [];
    for (let round = 0; round < opts.rounds; round++) {
      const order = roundOrder(round);
      const tag = `[round ${round + 1}/${opts.rounds}, ${order[0]} first]`;
      const line: string[] = [];
      for (const who of order) {
        await settle(SETTLE_MS);
        const s = await run.deploy(who, REF['rootfs-b']);
        expectDeployment(layout.sysroot[who], commits['rootfs-b'], true, `${who} deploy`);
        samples[who].push(s);
        line.push(`${who} ${fmtSample(s)}`);
      }
      await settle(SETTLE_MS);
      const v = await run.verify();
      verify.push(v);
      log(`${tag} deploy rootfs-b: ${line.join(', ')}; strata verify ${fmtSample(v)}`);
      for (const who of order) {
        run.undeploy(who);
        expectDeployment(layout.sysroot[who], commits['rootfs-b'], false, `${who} undeploy`);
      }
    }

    const targets: Target[] = [];
    const deployRatio = ratio(samples.strata, samples.ostree);
    const verifyMedian = r3(median(verify.map((s) => s.seconds)));
    addTarget(targets, 'deploy rootfs-b over rootfs-a', 'time strata/ostree', deployRatio, '<=', 1.0);
    addTarget(targets, 'admin verify rootfs-b', 'median seconds of strata admin verify', verifyMedian, '<', 1.5);
    const peak = (xs: Sample[]): number => r1(Math.max(...xs.map((s) => (s.maxRssKiB * 1024) / MB)));

    return {
      suite: 'deploy',
      rounds: opts.rounds,
      kernel: opts.kernel,
      startedAt: started.toISOString(),
      durationS: r1((Date.now() - started.getTime()) / 1000),
      method:
        'each step is one whole process (node bin/strata.js ... / ostree ...) under /usr/bin/time -f %M; wall time from spawn to exit; ' +
        `sync and a ${SETTLE_MS} ms pause before every timed step; strata and ostree alternate first and last per round (ostree --no-prune between them); ` +
        'every round deploys rootfs-b over rootfs-a and ends with an untimed undeploy of it; tree, sysroot setup and undeploy untimed; ' +
        'ratio = median(strata) / median(ostree)',
      commands: {
        strata: `node bin/strata.js admin deploy ${REF['rootfs-b']} --sysroot S1 --os ${STATEROOT}`,
        ostree: `ostree admin deploy --sysroot=S2 --os=${STATEROOT} ${REF['rootfs-b']}`,
        'ostree-no-prune': `ostree admin deploy --sysroot=S3 --os=${STATEROOT} --no-prune ${REF['rootfs-b']}`,
        verify: 'node bin/strata.js admin verify 0 --sysroot S1',
      },
      setup: {
        trees: 'cp -al of the cached rootfs, etc moved to usr/etc, usr/lib/modules/' + `${KVER}/vmlinuz (${KERNEL_BYTES / MB} MB) and initramfs.img (${INITRAMFS_BYTES / MB} MB), pseudo-random`,
        kernel: opts.kernel === 'new' ? 'rootfs-b brings a different kernel and initramfs (a kernel update): every deploy installs it into /boot' : 'rootfs-b has the same kernel and initramfs as rootfs-a: the boot checksum is shared and /boot already has it',
        sysroots:
          `S1: strata admin init-fs, os-init ${STATEROOT}, commit --timestamp=${TIMESTAMP} --add-metadata-string version=a|b of both trees (branches ${REF['rootfs-a']}, ${REF['rootfs-b']}) into its bare-user repo; ` +
          `S2, S3: ostree admin init-fs, os-init ${STATEROOT}, pull-local of both branches into their bare repos; rootfs-a deployed in each`,
        commits,
        sameCommits: true,
        sameBootChecksum: treeInfo['rootfs-a'].bootcsum === treeInfo['rootfs-b'].bootcsum,
        note: 'the sysroots are plain directories on one filesystem, so /boot shares it with the repo: ostree hardlinks the kernel into /boot where it can, strata copies it',
      },
      environment: describeEnvironment({ ostree: ctx.ostree, ostreeVersion: ostreeVersion(ctx.ostree, ctx.root), strata: strataState, loadStart, rootfsCache: ctx.cache, trees: treeInfo }),
      results: {
        deploy: {
          what: 'admin deploy of rootfs-b over rootfs-a (checkout, /etc merge, kernel, boot entries, switch)',
          strata: stats(samples.strata),
          ostree: stats(samples.ostree),
          ratio: deployRatio,
          ostreeNoPrune: stats(samples['ostree-no-prune']),
          ratioToNoPrune: ratio(samples.strata, samples['ostree-no-prune']),
        },
        verify: { what: 'strata admin verify 0 right after deploying rootfs-b (re-hash every file outside /etc and /var)', strata: stats(verify) },
        peakMemory: {
          what: 'max RSS over rounds, MB = 10^6 bytes',
          strataDeployMB: peak(samples.strata),
          ostreeDeployMB: peak(samples.ostree),
          strataVerifyMB: peak(verify),
        },
      },
      targets,
      allTargetsMet: targets.every((t) => t.met),
    };
  } finally {
    cleanup();
  }
}
