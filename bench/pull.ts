// The `pull` suite: `strata pull` against `ostree pull` over loopback HTTP,
// from one server that is neither tool (Debian's nginx), on the rootfs pair:
// a full pull of A into an empty bare-user repo, the update A -> B with and
// without static deltas (bytes on the wire and time), and the generation of
// the delta A -> B by each tool.
//
//   node dist/bench/run.js pull [--rounds N]
//
// Setup (untimed), under one scratch directory:
// - srv-a: an archive repo where strata committed rootfs-a as `os/stable`
//   (summary -u). What the server offers before the update.
// - srv-b: a copy of srv-a where strata then committed rootfs-b on top, made
//   the delta A -> B (`strata static-delta generate`) and ran summary -u.
//   What the server offers after the update; ostree's client uses strata's
//   delta here, which is the interop case.
// - srv-o: `ostree init --mode=archive`, `ostree pull-local --depth=1 srv-b
//   os/stable`, `ostree static-delta generate` A -> B, `ostree summary -u`:
//   the same commits with ostree's own delta.
// - nginx in the foreground on 127.0.0.1, root www/, where www/repo is a
//   symlink switched between srv-a, srv-b and srv-o. Its access log
//   ($bytes_sent per request) gives the bytes each client run moved.
// A round: full pull of A (fresh repos) by each tool; copies of those repos
// (cp -a, untimed) are then updated to B without deltas, with strata's delta
// and with ostree's delta; then each tool generates the delta A -> B in a
// hardlinked copy of its own server repo. Every timed step is one whole
// process under /usr/bin/time, after sync and a pause; the tool that goes
// first alternates per round.
//
// Nothing a round made is deleted before the run ends: on a filesystem
// without a journal (ext4 here) the kernel skips inodes freed in the last
// minutes when it allocates new ones (recently_deleted(): 60 s once the
// inode table is written back, 360 s while it is dirty), so removing a
// repo's thousands of files just before a timed step made the step after
// it up to twice as slow, for either tool.

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  type Env, type Sample, type Target, type Tool, type Tree, MB, TREES, addTarget, describeEnvironment, fmtSample, gitState, log, median,
  ostreeVersion, r1, r3, ratio, rm, runSync, settle, stats, timed, warmTree, which,
} from './common.js';

export const PULL_USAGE = 'pull [--rounds N]';

export interface PullBenchContext extends Omit<Env, 'trees' | 'work'> {
  cache: string;
  trees: Record<Tree, string>;
}

const BRANCH = 'os/stable';
const REMOTE = 'r';
const TIMESTAMP: Record<Tree, string> = { 'rootfs-a': '2024-01-01T00:00:00Z', 'rootfs-b': '2024-02-01T00:00:00Z' };
const SETTLE_MS = 1500;
const TOOLS: readonly Tool[] = ['strata', 'ostree'];

type Server = 'srv-a' | 'srv-b' | 'srv-o';
/** The timed pull steps: what the client starts from, what the server offers, which flags. */
type PullStep = 'full' | 'update-nodelta' | 'update-strata-delta' | 'update-ostree-delta';
const PULL_STEPS: readonly PullStep[] = ['full', 'update-nodelta', 'update-strata-delta', 'update-ostree-delta'];
const STEP_SERVER: Record<PullStep, Server> = { full: 'srv-a', 'update-nodelta': 'srv-b', 'update-strata-delta': 'srv-b', 'update-ostree-delta': 'srv-o' };
const STEP_WHAT: Record<PullStep, string> = {
  full: 'full pull of A (os/stable) into an empty bare-user repo; the server offers no delta',
  'update-nodelta': 'update A -> B with --disable-static-deltas (object walk)',
  'update-strata-delta': "update A -> B; the server offers the delta strata generated (ostree's client uses it too)",
  'update-ostree-delta': 'update A -> B; the server offers the delta ostree generated (strata\'s client uses it too)',
};

interface Wire {
  /** $bytes_sent summed over the run's requests (headers and bodies). */
  bytes: number;
  /** $body_bytes_sent summed. */
  bodyBytes: number;
  requests: number;
  /** Requests under /deltas/ (superblock and parts): the delta was used. */
  deltaRequests: number;
  /** $body_bytes_sent by kind of file: deltas, filez, dirtree, dirmeta, commit, other. */
  bodyBytesByKind: Record<string, number>;
}

interface PullSample extends Sample {
  wire: Wire;
}

// ---------------------------------------------------------------- nginx with a byte-counting access log

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

class Nginx {
  private child: ChildProcess | null = null;
  private offset = 0;
  readonly accessLog: string;
  url = '';

  constructor(
    private readonly dir: string,
    private readonly www: string,
  ) {
    this.accessLog = path.join(dir, 'access.log');
  }

  async start(binary: string): Promise<void> {
    const port = await freePort();
    for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) fs.mkdirSync(path.join(this.dir, d), { recursive: true });
    const conf = path.join(this.dir, 'nginx.conf');
    fs.writeFileSync(
      conf,
      `daemon off;
master_process off;
worker_processes 1;
pid ${this.dir}/nginx.pid;
error_log ${this.dir}/error.log;
events { worker_connections 512; }
http {
  log_format bench '$bytes_sent $body_bytes_sent $status "$request"';
  access_log ${this.accessLog} bench;
  client_body_temp_path ${this.dir}/body;
  proxy_temp_path ${this.dir}/proxy;
  fastcgi_temp_path ${this.dir}/fastcgi;
  uwsgi_temp_path ${this.dir}/uwsgi;
  scgi_temp_path ${this.dir}/scgi;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:${port};
    root ${this.www};
    autoindex off;
    location / { try_files $uri =404; }
  }
}
`,
    );
    this.child = spawn(binary, ['-p', this.dir, '-c', conf, '-e', path.join(this.dir, 'error.log')], { stdio: 'ignore' });
    for (let i = 0; i < 200; i++) {
      if (this.child.exitCode !== null) throw new Error(`nginx exited ${this.child.exitCode}: ${fs.readFileSync(path.join(this.dir, 'error.log'), 'utf8')}`);
      if (await canConnect(port)) {
        this.url = `http://127.0.0.1:${port}/repo/`;
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('nginx did not start listening');
  }

  /** Points www/repo at a server repository (atomic rename of a symlink). */
  serve(repoDir: string): void {
    const link = path.join(this.www, 'repo');
    const tmp = path.join(this.www, '.repo-new');
    rm(tmp);
    fs.symlinkSync(repoDir, tmp);
    fs.renameSync(tmp, link);
  }

  /** Marks the start of a client run in the access log. */
  mark(): void {
    this.offset = fs.existsSync(this.accessLog) ? fs.statSync(this.accessLog).size : 0;
  }

  /** The requests logged since mark(). nginx logs a request when it finishes, so wait a moment first. */
  async since(): Promise<Wire> {
    await new Promise((r) => setTimeout(r, 200));
    const text = fs.readFileSync(this.accessLog).subarray(this.offset).toString('utf8');
    const w: Wire = { bytes: 0, bodyBytes: 0, requests: 0, deltaRequests: 0, bodyBytesByKind: {} };
    for (const line of text.split('\n')) {
      const m = /^(\d+) (\d+) (\d+) "(\S+) (\S+)/.exec(line);
      if (!m) continue;
      w.bytes += Number(m[1]);
      w.bodyBytes += Number(m[2]);
      w.requests++;
      if (m[5].startsWith('/repo/deltas/')) w.deltaRequests++;
      const kind = m[5].startsWith('/repo/deltas/') ? 'deltas' : (/^\/repo\/objects\/.*\.(\w+)$/.exec(m[5])?.[1] ?? 'other');
      w.bodyBytesByKind[kind] = (w.bodyBytesByKind[kind] ?? 0) + Number(m[2]);
    }
    return w;
  }

  stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      child.on('exit', () => resolve());
      child.kill('SIGTERM');
    });
  }
}

// ---------------------------------------------------------------- the tools, as a user runs them

class Clients {
  private n = 0;
  constructor(
    private readonly ctx: PullBenchContext,
    private readonly work: string,
  ) {}

  strataArgv(args: string[]): [string, string[]] {
    return [this.ctx.strataArgv[0], [...this.ctx.strataArgv.slice(1), ...args]];
  }

  strata(args: string[]): string {
    return runSync(...this.strataArgv(args), this.ctx.root);
  }

  ostree(args: string[]): string {
    return runSync(this.ctx.ostree, args, this.ctx.root);
  }

  rssFile(): string {
    return path.join(this.work, `rss-${++this.n}`);
  }

  /** An empty bare-user repo with remote `r` at url, no signature checks. */
  initClient(tool: Tool, repo: string, url: string): void {
    if (tool === 'strata') {
      this.strata(['init', '--repo', repo, '--mode', 'bare-user']);
      this.strata(['remote', 'add', REMOTE, url, '--repo', repo, '--no-sign-verify']);
    } else {
      this.ostree([`--repo=${repo}`, 'init', '--mode=bare-user']);
      this.ostree([`--repo=${repo}`, 'remote', 'add', '--no-gpg-verify', REMOTE, url]);
    }
  }

  pullArgv(tool: Tool, repo: string, noDeltas: boolean): [string, string[]] {
    const flag = noDeltas ? ['--disable-static-deltas'] : [];
    if (tool === 'strata') return this.strataArgv(['pull', REMOTE, BRANCH, '--repo', repo, '--json', ...flag]);
    return [this.ctx.ostree, [`--repo=${repo}`, 'pull', ...flag, REMOTE, BRANCH]];
  }

  generateArgv(tool: Tool, repo: string, from: string, to: string): [string, string[]] {
    if (tool === 'strata') return this.strataArgv(['static-delta', 'generate', '--repo', repo, '--from', from, '--to', to]);
    return [this.ctx.ostree, [`--repo=${repo}`, 'static-delta', 'generate', `--from=${from}`, `--to=${to}`]];
  }

  revParse(tool: Tool, repo: string, rev: string): string {
    return (tool === 'strata' ? this.strata(['rev-parse', '--repo', repo, rev]) : this.ostree([`--repo=${repo}`, 'rev-parse', rev])).trim();
  }
}

function duBytes(dir: string): number {
  return Number(runSync('du', ['-sb', dir], '/').split('\t')[0]);
}

// ---------------------------------------------------------------- the suite

export async function runPullBench(ctx: PullBenchContext, opts: { rounds: number }): Promise<Record<string, unknown>> {
  const nginxBin = ['/usr/sbin/nginx', 'nginx'].map((n) => (n.startsWith('/') ? (fs.existsSync(n) ? n : null) : which(n))).find((n) => n) ?? null;
  if (!nginxBin) {
    log("nginx is missing; installing Debian's nginx-light package");
    runSync('apt-get', ['update', '-qq'], ctx.root);
    runSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'nginx-light'], ctx.root);
  }
  const nginxPath = nginxBin ?? '/usr/sbin/nginx';

  const scratch = process.env.STRATA_BENCH_DIR || '/var/tmp';
  fs.mkdirSync(scratch, { recursive: true });
  const work = fs.mkdtempSync(path.join(scratch, 'strata-bench-pull-'));
  const www = path.join(work, 'www');
  fs.mkdirSync(www);
  const nginx = new Nginx(path.join(work, 'nginx'), www);
  const cleanup = async (): Promise<void> => {
    await nginx.stop();
    rm(work);
  };
  process.once('SIGINT', () => {
    void cleanup().then(() => process.exit(130));
  });
  const c = new Clients(ctx, work);
  const srv: Record<Server, string> = { 'srv-a': path.join(work, 'srv-a'), 'srv-b': path.join(work, 'srv-b'), 'srv-o': path.join(work, 'srv-o') };

  try {
    log(`server repos in ${work}: strata commits rootfs-a (srv-a), then rootfs-b on top and the delta A -> B (srv-b); ostree pull-local and its own delta (srv-o)`);
    const treeInfo = Object.fromEntries(TREES.map((t) => [t, { path: ctx.trees[t], ...warmTree(ctx.trees[t]) }]));
    const commitArgs = (repo: string, tree: Tree): string[] => ['commit', '--repo', repo, '-b', BRANCH, `--timestamp=${TIMESTAMP[tree]}`, '-s', tree, '--add-metadata-string', `version=${tree}`, ctx.trees[tree]];
    c.strata(['init', '--repo', srv['srv-a'], '--mode', 'archive']);
    const A = c.strata(commitArgs(srv['srv-a'], 'rootfs-a')).trim().split('\n').pop() ?? '';
    runSync('cp', ['-a', srv['srv-a'], srv['srv-b']], ctx.root);
    c.strata(['summary', '-u', '--repo', srv['srv-a']]);
    const B = c.strata(commitArgs(srv['srv-b'], 'rootfs-b')).trim().split('\n').pop() ?? '';
    if (!/^[0-9a-f]{64}$/.test(A) || !/^[0-9a-f]{64}$/.test(B)) throw new Error(`strata commit printed no checksums (A='${A}', B='${B}')`);
    c.strata(['static-delta', 'generate', '--repo', srv['srv-b'], '--from', A, '--to', B]);
    c.strata(['summary', '-u', '--repo', srv['srv-b']]);

    c.ostree([`--repo=${srv['srv-o']}`, 'init', '--mode=archive']);
    c.ostree([`--repo=${srv['srv-o']}`, 'pull-local', '--depth=1', srv['srv-b'], BRANCH]);
    const parent = c.ostree([`--repo=${srv['srv-o']}`, 'rev-parse', `${BRANCH}^`]).trim();
    if (c.revParse('ostree', srv['srv-o'], BRANCH) !== B || parent !== A) throw new Error(`srv-o has ${BRANCH}=${c.revParse('ostree', srv['srv-o'], BRANCH)} with parent ${parent}; expected ${B} on ${A}`);
    c.ostree([`--repo=${srv['srv-o']}`, 'static-delta', 'generate', `--from=${A}`, `--to=${B}`]);
    c.ostree([`--repo=${srv['srv-o']}`, 'summary', '-u']);

    // Repos for the timed delta generation: hardlinked copies without deltas (generation only reads objects).
    const gen: Record<Tool, string> = { strata: path.join(work, 'gen-strata'), ostree: path.join(work, 'gen-ostree') };
    runSync('cp', ['-al', srv['srv-b'], gen.strata], ctx.root);
    runSync('cp', ['-al', srv['srv-o'], gen.ostree], ctx.root);
    for (const t of TOOLS) for (const d of ['deltas', 'delta-indexes']) rm(path.join(gen[t], d));

    const serverInfo = {
      'srv-a': { objectsBytes: duBytes(path.join(srv['srv-a'], 'objects')) },
      'srv-b': { objectsBytes: duBytes(path.join(srv['srv-b'], 'objects')), deltaBytes: duBytes(path.join(srv['srv-b'], 'deltas')) },
      'srv-o': { objectsBytes: duBytes(path.join(srv['srv-o'], 'objects')), deltaBytes: duBytes(path.join(srv['srv-o'], 'deltas')) },
    };

    await nginx.start(nginxPath);
    log(`nginx serves ${nginx.url}; one untimed full pull with each tool (checks the setup, warms caches and both programs)`);
    nginx.serve(srv['srv-a']);
    for (const tool of TOOLS) {
      const repo = path.join(work, `warm-${tool}`);
      c.initClient(tool, repo, nginx.url);
      runSync(...c.pullArgv(tool, repo, false), ctx.root);
      if (c.revParse(tool, repo, `${REMOTE}:${BRANCH}`) !== A) throw new Error(`${tool}'s warm-up pull did not end at A`);
    }

    const started = new Date();
    const loadStart = os.loadavg();
    const strataState = gitState(ctx.root);
    const byStep = <T>(f: () => T): Record<PullStep, T> => ({ full: f(), 'update-nodelta': f(), 'update-strata-delta': f(), 'update-ostree-delta': f() });
    const samples = byStep((): Record<Tool, PullSample[]> => ({ strata: [], ostree: [] }));
    const genSamples: Record<Tool, Sample[]> = { strata: [], ostree: [] };
    const genBytes: Record<Tool, number[]> = { strata: [], ostree: [] };
    const strataReports = byStep((): unknown[] => []);

    const timedPull = async (step: PullStep, tool: Tool, repo: string, expect: string): Promise<PullSample> => {
      await settle(SETTLE_MS);
      nginx.mark();
      const [cmd, args] = c.pullArgv(tool, repo, step === 'update-nodelta');
      const s = await timed(cmd, args, ctx.root, c.rssFile());
      const wire = await nginx.since();
      const got = c.revParse(tool, repo, `${REMOTE}:${BRANCH}`);
      if (got !== expect) throw new Error(`after ${tool} ${step}, ${REMOTE}:${BRANCH} is ${got}, expected ${expect}`);
      const wantDelta = step === 'update-strata-delta' || step === 'update-ostree-delta';
      if (wantDelta !== wire.deltaRequests > 0) throw new Error(`${tool} ${step}: ${wire.deltaRequests} requests under deltas/, expected ${wantDelta ? 'some' : 'none'}`);
      if (tool === 'strata') {
        const r = JSON.parse(s.stdout) as { delta: unknown; objects: unknown; bytes: unknown; elapsedMs: number };
        strataReports[step].push({ delta: r.delta, objects: r.objects, bytes: r.bytes, elapsedMs: r.elapsedMs });
      }
      return { ...s, wire };
    };

    for (let round = 0; round < opts.rounds; round++) {
      const order: Tool[] = round % 2 === 0 ? ['strata', 'ostree'] : ['ostree', 'strata'];
      const tag = `[round ${round + 1}/${opts.rounds}, ${order[0]} first]`;
      const dir = path.join(work, `round-${round + 1}`);
      fs.mkdirSync(dir);
      const full: Record<Tool, string> = { strata: path.join(dir, 'full-strata'), ostree: path.join(dir, 'full-ostree') };

      for (const step of PULL_STEPS) {
        nginx.serve(srv[STEP_SERVER[step]]);
        const line: string[] = [];
        for (const tool of order) {
          let repo = full[tool];
          if (step === 'full') c.initClient(tool, repo, nginx.url);
          else {
            repo = path.join(dir, `${step}-${tool}`);
            runSync('cp', ['-a', full[tool], repo], ctx.root);
          }
          const s = await timedPull(step, tool, repo, step === 'full' ? A : B);
          samples[step][tool].push(s);
          line.push(`${tool} ${fmtSample(s)} ${(s.wire.bytes / MB).toFixed(1)}MB/${s.wire.requests}req`);
        }
        log(`${tag} ${step}: ${line.join(', ')}`);
      }

      const line: string[] = [];
      for (const tool of order) {
        for (const d of ['deltas', 'delta-indexes']) rm(path.join(gen[tool], d));
        await settle(SETTLE_MS);
        const s = await timed(...c.generateArgv(tool, gen[tool], A, B), ctx.root, c.rssFile());
        genSamples[tool].push(s);
        genBytes[tool].push(duBytes(path.join(gen[tool], 'deltas')));
        line.push(`${tool} ${fmtSample(s)} ${(genBytes[tool][genBytes[tool].length - 1] / MB).toFixed(1)}MB`);
      }
      log(`${tag} delta generate A -> B: ${line.join(', ')}`);
    }

    // ---------------------------------------------------------------- report
    const wireStats = (xs: PullSample[]): Record<string, unknown> => ({
      bytesMedian: median(xs.map((x) => x.wire.bytes)),
      MB: r1(median(xs.map((x) => x.wire.bytes)) / MB),
      bodyBytesMedian: median(xs.map((x) => x.wire.bodyBytes)),
      requestsMedian: median(xs.map((x) => x.wire.requests)),
      deltaRequestsMedian: median(xs.map((x) => x.wire.deltaRequests)),
      bodyBytesByKind: xs.map((x) => x.wire.bodyBytesByKind),
    });
    const results: Record<string, unknown> = {};
    for (const step of PULL_STEPS) {
      const { strata: s, ostree: o } = samples[step];
      results[step] = {
        what: STEP_WHAT[step],
        server: step === 'full' ? 'srv-a' : STEP_SERVER[step],
        strata: { ...stats(s), wire: wireStats(s) },
        ostree: { ...stats(o), wire: wireStats(o) },
        ratio: ratio(s, o),
        bytesRatio: r3(median(s.map((x) => x.wire.bytes)) / median(o.map((x) => x.wire.bytes))),
        strataReports: strataReports[step],
      };
    }
    results.deltaGenerate = {
      what: 'static-delta generate --from A --to B, each tool in a hardlinked copy of its own server repo (srv-b for strata, srv-o for ostree), deltas/ emptied first',
      strata: { ...stats(genSamples.strata), deltaBytes: median(genBytes.strata), deltaMB: r1(median(genBytes.strata) / MB) },
      ostree: { ...stats(genSamples.ostree), deltaBytes: median(genBytes.ostree), deltaMB: r1(median(genBytes.ostree) / MB) },
      ratio: ratio(genSamples.strata, genSamples.ostree),
      sizeRatio: r3(median(genBytes.strata) / median(genBytes.ostree)),
      note: "sizes are du -sb of deltas/; ostree may also leave large new files out of its delta as 'fallback' objects that the client fetches from objects/ (counted in the update's wire bytes, not here)",
    };

    const targets: Target[] = [];
    const med = (xs: PullSample[]): number => median(xs.map((x) => x.wire.bytes));
    addTarget(targets, 'full pull of A into bare-user', 'time strata/ostree', ratio(samples.full.strata, samples.full.ostree), '<=', 0.8);
    addTarget(targets, "update A -> B with deltas (each tool's own delta)", 'MB on the wire, strata (10^6 bytes)', r1(med(samples['update-strata-delta'].strata) / MB), '<=', 15);
    addTarget(targets, "update A -> B with deltas (each tool's own delta)", 'time strata/ostree', ratio(samples['update-strata-delta'].strata, samples['update-ostree-delta'].ostree), '<=', 1.0);
    addTarget(targets, 'update A -> B without deltas', 'time strata/ostree', ratio(samples['update-nodelta'].strata, samples['update-nodelta'].ostree), '<=', 1.0);
    addTarget(targets, 'static-delta generate A -> B', 'time strata/ostree', ratio(genSamples.strata, genSamples.ostree), '<=', 0.5);

    return {
      suite: 'pull',
      rounds: opts.rounds,
      startedAt: started.toISOString(),
      durationS: r1((Date.now() - started.getTime()) / 1000),
      method:
        'each step is one whole process (node bin/strata.js ... / ostree ...) under /usr/bin/time -f %M; wall time from spawn to exit; ' +
        `sync and a ${SETTLE_MS} ms pause before every timed step; the first tool alternates per round; fresh client repos every round, none deleted before the run ends ` +
        '(update steps start from a cp -a of that round\'s full-pull repo); one nginx on 127.0.0.1 serves both clients, bytes = sum of ' +
        "$bytes_sent (headers + bodies) over the run's requests in nginx's access log; setup and removal untimed; ratio = median(strata) / median(ostree)",
      commands: {
        strataPull: `node bin/strata.js pull ${REMOTE} ${BRANCH} --repo C --json [--disable-static-deltas]`,
        ostreePull: `ostree --repo=C pull [--disable-static-deltas] ${REMOTE} ${BRANCH}`,
        clientSetup: `strata init --mode bare-user + remote add ${REMOTE} URL --no-sign-verify; ostree init --mode=bare-user + remote add --no-gpg-verify ${REMOTE} URL`,
        strataGenerate: 'node bin/strata.js static-delta generate --repo R --from A --to B',
        ostreeGenerate: 'ostree --repo=R static-delta generate --from=A --to=B',
      },
      setup: {
        commits: { A, B },
        servers: {
          'srv-a': `strata init --mode archive, commit rootfs-a -b ${BRANCH} --timestamp=${TIMESTAMP['rootfs-a']}, summary -u`,
          'srv-b': `cp -a srv-a, strata commit rootfs-b -b ${BRANCH} --timestamp=${TIMESTAMP['rootfs-b']}, static-delta generate --from A --to B, summary -u`,
          'srv-o': `ostree init --mode=archive, pull-local --depth=1 srv-b ${BRANCH}, static-delta generate --from=A --to=B, summary -u`,
          sizes: serverInfo,
        },
        server: `${nginxPath} (master_process off, one worker, sendfile, keep-alive), 127.0.0.1`,
        targetNotes:
          "the update targets compare strata pulling its own delta (srv-b) with ostree pulling ostree's delta (srv-o); 'without deltas' compares both walking objects",
      },
      environment: describeEnvironment({ ostree: ctx.ostree, ostreeVersion: ostreeVersion(ctx.ostree, ctx.root), strata: strataState, loadStart, rootfsCache: ctx.cache, trees: treeInfo }),
      results,
      targets,
      allTargetsMet: targets.every((t) => t.met),
    };
  } finally {
    await cleanup();
  }
}
