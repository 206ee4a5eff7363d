// `strata pull`: fetch a commit and the objects the local repository lacks
// from an archive repository served over HTTP (strata serve, nginx, a CDN,
// an ostree-made repository) or a file:// URL.
//
// Order of trust: the ref is resolved through the summary (verified when the
// remote has keys), the commit is fetched and hashed, its detached metadata
// is fetched and the signature checked BEFORE any tree or content object is
// requested. When the summary offers a static delta to the commit (from the
// commit the local ref names, or from nothing when the repository has no
// usable one), the delta is applied instead of walking objects, and a delta
// the server does not have (404) falls back to the walk; see decision 0008.
// Every object is re-hashed on arrival with OSTree's checksum
// rules before it is kept; wrong bytes are asked for once more, then
// reported with the URL and both checksums.
//
// Resumable: verified objects wait in `tmp/strata-pull-REMOTE/`, which
// outlives the process; large downloads in progress are `.partial` files
// there, continued with Range on the next attempt or run. Only at the end
// does one transaction move the objects into objects/ (commit last, after a
// syncfs) and then the ref moves. A SIGKILL at any moment leaves the
// repository as it was, and the next run fetches only what is missing.

import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { StrataError, ioError, isStrataError } from '../errors.js';
import {
  type Checksum, type Commit, type ObjectType, isChecksum, objectName, objectPath, parseCommit, parseDirMeta, parseDirTree, parseVardict,
} from '../core/objects.js';
import { Repo } from '../repo/repo.js';
import { checkRefWritable, readRef, validateRefName, writeRef } from '../repo/refs.js';
import { Transaction, acquirePidLock } from '../repo/transaction.js';
import { stagedName } from '../repo/stage-content.js';
import type { VerifyOutcome } from '../repo/verify-content.js';
import { WorkerPool, defaultWorkerCount } from '../repo/worker-pool.js';
import { ObjectLookup } from '../repo/object-lookup.js';
import { type PulledObject, stagePulled } from '../repo/stage-pulled.js';
import { type PublicKey, signaturesIn, verifySignatures } from './sign.js';
import { fetchRemoteSummary, getRemote, remoteKeys } from './remotes.js';
import { Fetcher } from './fetcher.js';
import type { FetchFile } from './delta-apply.js';
import { offeredDelta } from '../core/deltas.js';
import type { SummaryView } from './summary.js';

export interface PullOptions {
  /** Local repository (archive or bare-user). */
  repo: string;
  /** Name of a configured remote. */
  remote: string;
  /** A ref the remote offers, or a full commit checksum. */
  rev: string;
  /** Parent commits to fetch too (0: only the commit, as ostree; -1: all). */
  depth?: number;
  /** Write `refs/heads/REF` instead of `refs/remotes/REMOTE/REF`. */
  mirror?: boolean;
  /** Requests in flight at most (keep-alive connections). ostree uses 8. */
  jobs?: number;
  /** Move the ref even to a commit older than the one it names. */
  allowDowngrade?: boolean;
  /** Never use a static delta the summary offers; fetch objects (ostree's --disable-static-deltas). */
  disableStaticDeltas?: boolean;
  /** Retries of a transient network failure (default 5). */
  retries?: number;
  /** Idle timeout of a request in ms (default 30 s). */
  timeoutMs?: number;
  /** Objects waiting for the workers beyond which the pulling thread stages objects itself (default INLINE_BACKLOG; 0: always). */
  inlineBacklog?: number;
  onProgress?: (p: PullProgress) => void;
}

export interface PullProgress {
  /** Objects done (fetched or resumed) and known so far; the total grows while trees arrive. While a delta applies: its parts. */
  done: number;
  total: number;
  bytes: number;
  /** Whether tree metadata is still being walked (the total is not final yet). */
  scanning: boolean;
  /** Whether `done`/`total` count parts of a static delta rather than objects. */
  delta: boolean;
}

export interface PullDelta {
  /** `FROM-TO`, or `TO` for a delta from nothing, as the summary lists it. */
  name: string;
  /** Parts the delta has (parts whose objects were all present are not fetched). */
  parts: number;
  /** Bytes fetched for it: superblock, parts and fallback objects. */
  bytes: number;
}

export interface PullResult {
  remote: string;
  url: string;
  /** The ref asked for, or null when a commit checksum was given. */
  ref: string | null;
  /** The local ref written (`remote:ref`, or `ref` with --mirror), or null. */
  localRef: string | null;
  commit: Checksum;
  /** What the local ref named before, or null. */
  previous: Checksum | null;
  changed: boolean;
  timestamp: number;
  version: string | null;
  /** The key (base64) whose signature verified the commit, or null when the remote has no keys. */
  verifiedBy: string | null;
  /** The static delta applied, or null when objects were fetched one by one. */
  delta: PullDelta | null;
  commits: number;
  objects: {
    /** Objects downloaded in this run. */
    fetched: number;
    metadata: number;
    content: number;
    /** Verified objects kept from an interrupted earlier run. */
    resumed: number;
    /** Objects written into the repository by this pull. */
    stored: number;
  };
  bytes: {
    /** Bytes received from the network in this run. */
    fetched: number;
    /** Bytes of partial downloads continued with Range instead of fetched again. */
    resumedPartial: number;
  };
  retries: number;
  jobs: number;
  elapsedMs: number;
}

export const DEFAULT_JOBS = 8;
/**
 * Objects waiting for (or in) the workers beyond which this thread verifies
 * and stages fetched objects itself: the HTTP client and the walk leave it
 * idle about 40% of a full pull, while the worker falls behind. On two cores,
 * full pulls of rootfs-b went from 1.91-1.95 s to 1.68-1.73 s median, with
 * about 1% more CPU (16: no gain and 0.3 s more CPU; 32 and 48 less gain;
 * 80 and 96 about the same).
 */
const INLINE_BACKLOG = 64;
/** Fetched objects waiting for (or in) a worker at most, beside the requests in flight; bodies up to 1 MiB each. */
const MAX_VERIFYING = 96;
/** OSTREE_MAX_METADATA_SIZE. */
const MAX_METADATA = 10 * 1024 * 1024;
const MAX_CONTENT = 64 * 1024 * 1024 * 1024;

// A verified object waits in a pull's staging area under its objects/ name
// (`objectName`, `XX/REST.EXT`), so that the commit can move a whole `XX`
// directory into a repository that lacks it (a first pull) instead of
// renaming each object.
const STAGED_DIR = /^[0-9a-f]{2}$/;
/** The pid lock that keeps two pulls from one remote apart, in the staging area. */
const PULL_LOCK = 'lock';

/** The staging area a pull from `remote` keeps between runs. */
export function pullStagingDir(repo: Repo, remote: string): string {
  return path.join(repo.path, 'tmp', `strata-pull-${remote}`);
}

export async function pull(opts: PullOptions): Promise<PullResult> {
  const started = Date.now();
  const jobs = opts.jobs ?? DEFAULT_JOBS;
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 256) throw new StrataError('USAGE', `--jobs needs a whole number from 1 to 256, got ${jobs}`);
  const depth = opts.depth ?? 0;
  if (!Number.isInteger(depth) || depth < -1) throw new StrataError('USAGE', `--depth needs a whole number >= -1, got ${depth}`);
  const repo = Repo.open(opts.repo);
  const remote = getRemote({ repo: opts.repo, name: opts.remote });
  const keys = remote.signVerify ? remoteKeys(remote) : [];
  const byChecksum = isChecksum(opts.rev);
  if (!byChecksum) {
    validateRefName(opts.rev);
    if (opts.rev.includes(':')) throw new StrataError('INVALID_REF', `give the remote's ref without a remote prefix, not '${opts.rev}'`, { name: opts.rev });
  }
  const localRef = byChecksum ? null : opts.mirror ? opts.rev : `${remote.name}:${opts.rev}`;
  if (localRef) checkRefWritable(repo, localRef);

  const fetcher = new Fetcher({ url: remote.url, jobs, retries: opts.retries, timeoutMs: opts.timeoutMs });
  let unlock: (() => void) | undefined;
  try {
    // The summary is fetched once: it names the ref's commit and the deltas on offer.
    const { commit, summary } = byChecksum
      ? { commit: opts.rev as Checksum, summary: opts.disableStaticDeltas ? null : await remoteSummaryOrNull(opts.repo, remote.name, fetcher) }
      : await resolveRemoteRef(opts.repo, remote.name, remote.url, opts.rev, fetcher);
    // Nothing but the commit and its signature is fetched before the signature verifies.
    const head = await fetchCommit(fetcher, commit, keys, remote.name);
    if (!head) throw new StrataError('HTTP_ERROR', `remote ${remote.name} has no commit ${commit} (${fetcher.url(objectPath(commit, 'commit', true)).href}: 404 Not Found)`, { url: fetcher.url(objectPath(commit, 'commit', true)).href, status: 404 });
    const previous = localRef ? readRef(repo, localRef) : null;
    if (previous && previous !== commit && !opts.allowDowngrade && repo.hasObject(previous, 'commit')) {
      const old = repo.loadCommit(previous);
      if (head.commit.timestamp < old.timestamp) {
        throw new StrataError(
          'DOWNGRADE_REFUSED',
          `${remote.name}:${opts.rev} is ${commit.slice(0, 12)} from ${iso(head.commit.timestamp)}, older than ${previous.slice(0, 12)} from ${iso(old.timestamp)} that ${localRef} names; pass --allow-downgrade to move back`,
          { ref: localRef, commit, previous, timestamp: head.commit.timestamp, previousTimestamp: old.timestamp },
        );
      }
    }

    const stagingDir = pullStagingDir(repo, remote.name);
    try {
      fs.mkdirSync(stagingDir, { recursive: true });
    } catch (err) {
      throw ioError(err, 'create', stagingDir);
    }
    unlock = acquirePidLock(path.join(stagingDir, PULL_LOCK), (pid) => new StrataError('REPO_LOCKED', `another pull from ${remote.name} into ${repo.path} is running (process ${pid})`, { pid }));
    let delta: PullDelta | null = null;
    let deltaStored = 0;
    const plan = opts.disableStaticDeltas || !summary ? null : chooseDelta(repo, summary, previous, commit);
    if (plan) {
      try {
        // Loaded only for a pull that applies a delta (a full pull of objects never needs it).
        const { applyDelta } = await import('./delta-apply.js');
        const r = await applyDelta({
          repo,
          fetch: deltaFetch(fetcher),
          from: plan.from,
          to: commit,
          superblockDigest: plan.digest,
          // The metadata whose signature was just verified, not the copy inside the superblock.
          detachedMetadata: head.meta,
          onProgress: (done, parts) => opts.onProgress?.({ done, total: parts, bytes: fetcher.bytesReceived, scanning: false, delta: true }),
        });
        delta = { name: r.name, parts: r.parts, bytes: r.bytesFetched };
        deltaStored = r.objectsWritten;
      } catch (err) {
        // The summary lists a delta the server lacks (a stale summary, a mirror without deltas): walk objects, as ostree does.
        const missing = isStrataError(err, 'DELTA_NOT_FOUND') || (isStrataError(err, 'HTTP_ERROR') && err.data.status === 404);
        if (!missing) throw err;
      }
    }
    // After a delta the commit is complete: this fetches only parents for --depth and stores nothing new.
    const session = new PullSession(repo, fetcher, stagingDir, jobs, keys, remote.name, opts.inlineBacklog ?? INLINE_BACKLOG, opts.onProgress);
    try {
      await session.run(head, depth);
    } finally {
      await session.close();
    }
    const stored = applyPull(repo, stagingDir, session) + deltaStored;
    if (localRef && previous !== commit) writeRef(repo, localRef, commit);
    const version = head.commit.metadata.find(([k]) => k === 'version');
    return {
      remote: remote.name,
      url: remote.url,
      ref: byChecksum ? null : opts.rev,
      localRef,
      commit,
      previous,
      changed: localRef !== null && previous !== commit,
      timestamp: head.commit.timestamp,
      version: version && version[1].type === 's' ? (version[1].value as string) : null,
      verifiedBy: head.verifiedBy,
      delta,
      commits: session.commits.size,
      objects: { fetched: session.fetchedMeta + session.fetchedContent, metadata: session.fetchedMeta, content: session.fetchedContent, resumed: session.resumed, stored },
      bytes: { fetched: fetcher.bytesReceived, resumedPartial: fetcher.bytesResumed },
      retries: fetcher.retryCount,
      jobs,
      elapsedMs: Date.now() - started,
    };
  } finally {
    unlock?.();
    fetcher.close();
  }
}

function iso(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace('.000Z', 'Z');
}

/** A ref's commit: from the summary (verified by remotes.ts when the remote has keys), else from refs/heads/REF. */
/**
 * The commit a remote's ref names now (summary, verified when the remote has
 * keys; else refs/heads) and its timestamp from the commit object alone
 * (hash-checked, not stored): what `admin upgrade --check` needs.
 */
export async function remoteRefCommit(opts: { repo: string; remote: string; ref: string }): Promise<{ checksum: Checksum; timestamp: number }> {
  const remote = getRemote({ repo: opts.repo, name: opts.remote });
  const fetcher = new Fetcher({ url: remote.url, jobs: 1 });
  try {
    const { commit: checksum } = await resolveRemoteRef(opts.repo, remote.name, remote.url, opts.ref, fetcher);
    const rel = objectPath(checksum, 'commit', true);
    const bytes = await fetcher.getBuffer(rel, { maxBytes: 1 << 20 });
    if (!bytes || createHash('sha256').update(bytes).digest('hex') !== checksum) {
      throw new StrataError('OBJECT_CORRUPT', `${fetcher.url(rel).href} does not hash to ${checksum}`, { url: fetcher.url(rel).href });
    }
    return { checksum, timestamp: parseCommit(bytes).timestamp };
  } finally {
    fetcher.close();
  }
}

/** The remote's summary (verified when the remote has keys), or null when it serves none; read with the pull's retries and idle timeout. */
async function remoteSummaryOrNull(repoPath: string, name: string, fetcher: Fetcher): Promise<SummaryView | null> {
  try {
    return (await fetchRemoteSummary({ repo: repoPath, name, get: (rel, o) => fetcher.getBuffer(rel, { allowMissing: true, maxBytes: o.maxBytes }) })).summary;
  } catch (err) {
    if (isStrataError(err, 'SUMMARY_NOT_FOUND')) return null;
    throw err;
  }
}

/** The commit a ref names, and the summary it was read from (null: the remote has none). */
async function resolveRemoteRef(repoPath: string, name: string, url: string, ref: string, fetcher: Fetcher): Promise<{ commit: Checksum; summary: SummaryView | null }> {
  const summary = await remoteSummaryOrNull(repoPath, name, fetcher);
  if (summary) {
    const entry = summary.refs.find((r) => r.name === ref);
    if (!entry) {
      throw new StrataError('REF_NOT_FOUND', `remote ${name} (${url}) offers no ref '${ref}' (its summary lists ${summary.refs.length}); see 'strata remote refs ${name}'`, { remote: name, ref });
    }
    return { commit: entry.checksum, summary };
  }
  // No summary (as ostree falls back to): the ref file itself.
  const body = await fetcher.getBuffer(`refs/heads/${ref}`, { allowMissing: true, maxBytes: 4096 });
  if (body === null) throw new StrataError('REF_NOT_FOUND', `remote ${name} (${url}) has no summary and no refs/heads/${ref}`, { remote: name, ref });
  const text = body.toString('utf8').trim();
  if (!isChecksum(text)) throw new StrataError('INVALID_CHECKSUM', `remote ${name}: refs/heads/${ref} holds '${text.slice(0, 80)}', not a checksum`, { remote: name, ref });
  return { commit: text, summary: null };
}

/** A commit stored by an interrupted ostree pull: present, but its tree may lack objects. */
function isPartialCommit(repo: Repo, checksum: Checksum): boolean {
  return fs.existsSync(path.join(repo.path, 'state', `${checksum}.commitpartial`));
}

/**
 * The static delta to apply, as ostree picks it: FROM→TO when the local ref
 * names a complete commit FROM here; from nothing when there is no such
 * commit; none when TO is already complete or the summary offers neither.
 */
export function chooseDelta(repo: Repo, summary: { staticDeltas: Record<string, string> }, previous: Checksum | null, to: Checksum): { from: Checksum | null; digest: string } | null {
  if (repo.hasObject(to, 'commit') && !isPartialCommit(repo, to)) return null;
  if (previous !== null && previous !== to && repo.hasObject(previous, 'commit') && !isPartialCommit(repo, previous)) {
    const digest = offeredDelta(summary, previous, to);
    return digest === undefined ? null : { from: previous, digest };
  }
  const digest = offeredDelta(summary, null, to);
  return digest === undefined ? null : { from: null, digest };
}

/** Delta parts are held in memory; libostree makes them of 32 MiB uncompressed at most by default. */
const MAX_DELTA_PART = 256 * 1024 * 1024;
/** libostree sends large new files as fallback objects beside the parts. */
const MAX_DELTA_FALLBACK = 1024 * 1024 * 1024;

/** Reads files of a delta through the pull's fetcher (retries, keep-alive, byte counts); 404 is DELTA_NOT_FOUND. */
function deltaFetch(fetcher: Fetcher): FetchFile {
  return async (rel) => {
    const body = await fetcher.getBuffer(rel, { allowMissing: true, maxBytes: rel.startsWith('objects/') ? MAX_DELTA_FALLBACK : MAX_DELTA_PART });
    if (body === null) {
      const url = fetcher.url(rel).href;
      throw new StrataError('DELTA_NOT_FOUND', `the remote lists a static delta it does not serve: ${url}: 404 Not Found`, { url, status: 404 });
    }
    return body;
  };
}

interface FetchedCommit {
  checksum: Checksum;
  bytes: Buffer;
  commit: Commit;
  /** Detached metadata as fetched, or null when the remote has none. */
  meta: Buffer | null;
  verifiedBy: string | null;
}

function corrupt(url: string, expected: string, actual: string, what: string): StrataError {
  return new StrataError('OBJECT_CORRUPT', `server sent wrong bytes for ${what} ${expected}: ${url} hashes to ${actual}`, { url, expected, actual });
}

/** Fetches a commit and its detached metadata and checks the signature; null when the remote has no such commit. */
async function fetchCommit(fetcher: Fetcher, checksum: Checksum, keys: readonly PublicKey[], remote: string): Promise<FetchedCommit | null> {
  const rel = objectPath(checksum, 'commit', true);
  let bytes: Buffer | null = null;
  for (let attempt = 0; ; attempt++) {
    bytes = await fetcher.getBuffer(rel, { allowMissing: true, maxBytes: MAX_METADATA });
    if (bytes === null) return null;
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual === checksum) break;
    if (attempt >= 1) throw corrupt(fetcher.url(rel).href, checksum, actual, 'commit');
  }
  const commit = parseWith(() => parseCommit(bytes), fetcher.url(rel).href);
  const metaRel = objectPath(checksum, 'commitmeta', true);
  const metaUrl = fetcher.url(metaRel).href;
  for (let attempt = 0; ; attempt++) {
    const meta = await fetcher.getBuffer(metaRel, { allowMissing: true, maxBytes: MAX_METADATA });
    try {
      let verifiedBy: string | null = null;
      if (keys.length > 0) {
        const what = `commit ${checksum} from remote ${remote}`;
        const parsed = meta === null ? null : parseWith(() => parseVardict(meta), metaUrl);
        verifiedBy = verifySignatures(bytes, signaturesIn(parsed, what), keys, what).key;
      } else if (meta !== null) {
        parseWith(() => parseVardict(meta), metaUrl);
      }
      return { checksum, bytes, commit, meta, verifiedBy };
    } catch (err) {
      // Detached metadata has no checksum of its own: wrong bytes on the wire show as
      // unparsable metadata or a signature that does not verify. Ask once more, as for objects.
      const wire = isStrataError(err, 'OBJECT_MALFORMED') || isStrataError(err, 'SIGNATURE_INVALID') || isStrataError(err, 'SIGNATURE_MISSING');
      if (meta === null || attempt >= 1 || !wire) throw err;
    }
  }
}

/** Parses fetched metadata; a parse failure names the URL. An unsafe entry name stays UNSAFE_PATH: it is a hostile tree, not a damaged one. */
function parseWith<T>(fn: () => T, where: string | (() => string)): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof StrataError) {
      const url = typeof where === 'string' ? where : where();
      throw new StrataError(err.code === 'UNSAFE_PATH' ? 'UNSAFE_PATH' : 'OBJECT_MALFORMED', `${url}: ${err.message}`, { ...err.data, url });
    }
    throw err;
  }
}

type Kind = Exclude<ObjectType, 'commit' | 'commitmeta'>;

/** One run of the walk: schedules fetches, keeps counts, and remembers what waits in the staging area. */
class PullSession {
  readonly commits = new Map<Checksum, FetchedCommit>();
  /** Objects verified in the staging area, to move into the repository; `absent`: the repository lacked it when the walk met it. */
  readonly staged: { checksum: Checksum; type: Kind; absent?: boolean }[] = [];
  fetchedMeta = 0;
  fetchedContent = 0;
  resumed = 0;
  private readonly seen = new Set<string>();
  private readonly metaQueue: (() => Promise<void>)[] = [];
  private readonly contentQueue: (() => Promise<void>)[] = [];
  /** Names in the staging area when the run began: what an earlier run left. */
  private readonly leftOver = new Set<string>();
  /** `XX` directories of the staging area known to exist. */
  private readonly stagedDirs = new Set<string>();
  /** Tasks started (fetching, or waiting for a worker to verify what they fetched). */
  private active = 0;
  /** Requests in flight, at most `jobs`; tasks waiting for one, metadata first. */
  private requests = 0;
  private readonly waitingMeta: (() => void)[] = [];
  private readonly waitingContent: (() => void)[] = [];
  private pool: WorkerPool | null = null;
  /** What objects/ holds, listed once (an object another writer adds meanwhile is only fetched again). */
  private readonly lookup: ObjectLookup;
  private known = 0;
  private failure: unknown = null;
  private settle: (() => void) | null = null;

  constructor(
    readonly repo: Repo,
    readonly fetcher: Fetcher,
    readonly dir: string,
    readonly jobs: number,
    readonly keys: readonly PublicKey[],
    readonly remote: string,
    readonly inlineBacklog: number,
    readonly onProgress?: (p: PullProgress) => void,
  ) {
    this.lookup = new ObjectLookup(repo);
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const name = entry.name;
      if (entry.isDirectory() && STAGED_DIR.test(name)) {
        // Objects an earlier run verified, in objects/'s layout: `XX/REST.EXT`.
        for (const f of fs.readdirSync(`${dir}/${name}`)) this.keepLeftOver(`${name}/${f}`);
        this.stagedDirs.add(name);
      } else this.keepLeftOver(name);
    }
  }

  /** Makes the staging area's `XX` directory for `checksum` unless this run made or met it. */
  private makeStagedDir(checksum: Checksum): void {
    const xx = checksum.slice(0, 2);
    if (this.stagedDirs.has(xx)) return;
    const dir = `${this.dir}/${xx}`;
    try {
      fs.mkdirSync(dir, { mode: 0o755 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(err, 'create', dir);
    }
    this.stagedDirs.add(xx);
  }

  private keepLeftOver(name: string): void {
    // Outputs of a killed run that never got their final name.
    if (name.endsWith('.tmp')) fs.rmSync(`${this.dir}/${name}`, { force: true });
    else if (name !== PULL_LOCK) this.leftOver.add(name);
  }

  /**
   * Verification runs in worker threads, started when the first content
   * object arrives: one per core but the one this thread keeps busy with the
   * HTTP client and the walk (on two cores, full pulls of rootfs-a in three
   * batches of alternating runs: one worker 1.72, 1.87 and 1.86 s median,
   * two workers 1.81, 1.90 and 1.92 s, with about 10% less CPU; decision 0003).
   * When they fall behind, this thread stages objects too (INLINE_BACKLOG).
   */
  private workers(): WorkerPool {
    this.pool ??= new WorkerPool(Math.max(1, defaultWorkerCount() - 1));
    return this.pool;
  }

  async close(): Promise<void> {
    await this.pool?.close();
    this.pool = null;
  }

  /** Waits for a request slot; metadata goes before content (it reveals more work). */
  private async request<T>(kind: 'meta' | 'content', fetch: () => Promise<T>): Promise<T> {
    if (this.requests >= this.jobs) await new Promise<void>((resolve) => (kind === 'meta' ? this.waitingMeta : this.waitingContent).push(resolve));
    else this.requests++;
    try {
      return await fetch();
    } finally {
      const next = this.waitingMeta.shift() ?? this.waitingContent.shift();
      // The slot passes straight to the next waiter.
      if (next) next();
      else this.requests--;
    }
  }

  async run(head: FetchedCommit, depth: number): Promise<void> {
    const done = new Promise<void>((resolve) => (this.settle = resolve));
    this.addCommit(head, depth);
    this.pump();
    await done;
    if (this.failure) throw this.failure;
    this.report();
  }

  private addCommit(c: FetchedCommit, depthLeft: number): void {
    this.commits.set(c.checksum, c);
    const partial = fs.existsSync(path.join(this.repo.path, 'state', `${c.checksum}.commitpartial`));
    // A commit in the repository is complete: a transaction stores it after everything it needs.
    if (!this.repo.hasObject(c.checksum, 'commit') || partial) {
      this.want(c.commit.rootTree, 'dirtree');
      this.want(c.commit.rootMeta, 'dirmeta');
    }
    const parent = c.commit.parent;
    if (parent && depthLeft !== 0 && !this.commits.has(parent)) {
      this.schedule('meta', async () => {
        const p = await fetchCommit(this.fetcher, parent, this.keys, this.remote);
        // A history cut short on the server ends the walk there, as with ostree's depth.
        if (p) this.addCommit(p, depthLeft - 1);
      });
    }
  }

  private want(checksum: Checksum, type: Kind): void {
    const key = `${checksum}.${type}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    if (type !== 'dirtree' && this.lookup.has(checksum, type)) return;
    this.known++;
    this.schedule(type === 'file' ? 'content' : 'meta', () => (type === 'file' ? this.content(checksum) : this.metadata(checksum, type)));
  }

  private schedule(kind: 'meta' | 'content', task: () => Promise<void>): void {
    (kind === 'meta' ? this.metaQueue : this.contentQueue).push(task);
    this.pump();
  }

  /**
   * Starts queued tasks, metadata first (it reveals more work). More tasks
   * than requests run at once: a task that has its body waits for a worker
   * while the next request goes out.
   */
  private pump(): void {
    while (this.failure === null && this.active < this.jobs + MAX_VERIFYING) {
      const task = this.metaQueue.shift() ?? this.contentQueue.shift();
      if (!task) break;
      this.active++;
      task().then(
        () => this.finishTask(),
        (err: unknown) => {
          this.failure ??= err;
          this.finishTask();
        },
      );
    }
    if (this.active === 0 && (this.failure !== null || (this.metaQueue.length === 0 && this.contentQueue.length === 0))) this.settle?.();
  }

  private finishTask(): void {
    this.active--;
    this.report();
    this.pump();
  }

  private report(): void {
    this.onProgress?.({
      done: this.fetchedMeta + this.fetchedContent + this.resumed,
      total: this.known,
      bytes: this.fetcher.bytesReceived,
      scanning: this.metaQueue.length > 0,
      delta: false,
    });
  }


  /** A dirtree or dirmeta: from the repository, the staging area, or the remote, hashed before use. */
  private async metadata(checksum: Checksum, type: 'dirtree' | 'dirmeta'): Promise<void> {
    let bytes: Buffer | null = null;
    const inRepo = this.lookup.has(checksum, type);
    if (inRepo) {
      // A tree stored earlier may still lack children (an interrupted ostree pull): walk it.
      if (type === 'dirtree') this.scanTree(checksum, this.repo.readMetadataBytes(checksum, type), this.repo.objectFile(checksum, type));
      this.known--;
      return;
    }
    const name = objectName(checksum, type, this.repo.archive);
    const staged = `${this.dir}/${name}`;
    if (this.leftOver.has(name)) {
      try {
        const kept = fs.readFileSync(staged);
        if (createHash('sha256').update(kept).digest('hex') === checksum) {
          bytes = kept;
          this.resumed++;
        }
      } catch {
        // gone meanwhile
      }
    }
    const rel = objectPath(checksum, type, true);
    const url = (): string => this.fetcher.url(rel).href;
    let fetched = false;
    for (let attempt = 0; bytes === null; attempt++) {
      const body = (await this.request('meta', () => this.fetcher.getBuffer(rel, { maxBytes: MAX_METADATA }))) as Buffer;
      const actual = createHash('sha256').update(body).digest('hex');
      if (actual === checksum) {
        bytes = body;
        fetched = true;
        this.fetchedMeta++;
      } else if (attempt >= 1) {
        throw corrupt(url(), checksum, actual, type);
      }
    }
    // Parsed (entry names checked) before it is kept: a hostile tree never reaches the staging area.
    if (type === 'dirtree') this.scanTree(checksum, bytes, url);
    else parseWith(() => parseDirMeta(bytes), url);
    if (fetched) {
      this.makeStagedDir(checksum);
      writeStagedFile(staged, bytes);
    }
    this.staged.push(fetched ? { checksum, type, absent: true } : { checksum, type });
  }

  private scanTree(checksum: Checksum, bytes: Buffer, where: string | (() => string)): void {
    const tree = parseWith(() => parseDirTree(bytes), where);
    for (const f of tree.files) this.want(f.checksum, 'file');
    for (const d of tree.dirs) {
      this.want(d.meta, 'dirmeta');
      this.want(d.tree, 'dirtree');
    }
  }

  /**
   * A content object: kept from an earlier run (re-hashed) or fetched, then
   * verified and staged in the local format by a worker thread.
   */
  private async content(checksum: Checksum): Promise<void> {
    const name = objectName(checksum, 'file', this.repo.archive);
    const staged = `${this.dir}/${name}`;
    if (this.leftOver.has(name)) {
      const kept = await this.workers().run<VerifyOutcome>({ kind: 'verify-file', file: staged, checksum, archive: this.repo.archive });
      if (kept.status === 'ok') {
        this.resumed++;
        this.staged.push({ checksum, type: 'file' });
        return;
      }
      fs.rmSync(staged, { force: true });
    }
    const rel = objectPath(checksum, 'file', true);
    const partial = `${this.dir}/${checksum}.filez.partial`;
    const noEarlierPartial = this.leftOver.size === 0 || !this.leftOver.has(`${checksum}.filez.partial`);
    this.makeStagedDir(checksum);
    for (let attempt = 0; ; attempt++) {
      const got = await this.request('content', () => this.fetcher.getObject(rel, partial, { maxBytes: MAX_CONTENT, noEarlierPartial }));
      const job: PulledObject = { checksum, staged, archive: this.repo.archive };
      const transfer: ArrayBuffer[] = [];
      if (got.kind === 'file') job.file = got.path;
      else {
        job.body = got.body;
        // Memory that belongs to this body alone moves to the worker without a copy.
        if (got.owner !== null) transfer.push(got.owner);
      }
      const pool = this.workers();
      const actual = job.body !== undefined && pool.backlog >= this.inlineBacklog ? await stagePulled(job) : await pool.run<string>({ kind: 'stage-pulled', job }, transfer);
      if (actual === checksum) break;
      fs.rmSync(partial, { force: true });
      fs.rmSync(`${partial}.etag`, { force: true });
      if (attempt >= 1) throw corrupt(this.fetcher.url(rel).href, checksum, actual, 'file object');
    }
    this.fetchedContent++;
    this.staged.push({ checksum, type: 'file', absent: true });
  }
}

/**
 * Writes a verified object under its staged name. A kill during the write
 * can leave it torn; every staged object is re-hashed when a later run
 * resumes it, so no temp name and rename are needed.
 */
function writeStagedFile(file: string, bytes: Buffer): void {
  try {
    fs.writeFileSync(file, bytes, { mode: 0o644 });
  } catch (err) {
    fs.rmSync(file, { force: true });
    throw ioError(err, 'stage pulled object', file);
  }
}

/**
 * Moves the verified objects into the repository in one transaction (synced,
 * commits last) and drops the staging area. Returns how many objects it stored.
 */
function applyPull(repo: Repo, stagingDir: string, session: PullSession): number {
  const txn = Transaction.begin(repo);
  let stored = 0;
  try {
    for (const o of session.staged) {
      // Objects fetched in this run were absent when the walk met them (a writer storing the same bytes since is harmless); kept ones are looked up.
      if (!o.absent && repo.hasObject(o.checksum, o.type)) continue;
      // From the pull's staging area straight into objects/ after the syncfs: a whole XX directory, or one rename per object.
      txn.adopt(o.checksum, o.type, `${stagingDir}/${objectName(o.checksum, o.type, repo.archive)}`);
    }
    for (const c of session.commits.values()) {
      if (c.meta !== null) {
        const file = repo.objectFile(c.checksum, 'commitmeta');
        const same = fs.existsSync(file) && fs.readFileSync(file).equals(c.meta);
        if (!same) {
          fs.writeFileSync(path.join(txn.stagingDir, stagedName(c.checksum, 'commitmeta', repo.archive)), c.meta, { mode: 0o644 });
          txn.noteStaged(c.checksum, 'commitmeta');
        }
      }
      if (!repo.hasObject(c.checksum, 'commit')) {
        fs.writeFileSync(path.join(txn.stagingDir, stagedName(c.checksum, 'commit', repo.archive)), c.bytes, { mode: 0o644 });
        txn.noteStaged(c.checksum, 'commit');
      }
    }
    stored = txn.stagedCount;
    txn.commit();
  } catch (err) {
    txn.abort();
    throw err instanceof StrataError ? err : ioError(err, 'store pulled objects in', repo.path);
  }
  // An ostree pull that stopped half-way marks its commit partial; this one is complete now.
  for (const c of session.commits.keys()) fs.rmSync(path.join(repo.path, 'state', `${c}.commitpartial`), { force: true });
  fs.rmSync(stagingDir, { recursive: true, force: true });
  return stored;
}
