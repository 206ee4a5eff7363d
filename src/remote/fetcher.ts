// Downloads for a pull: many requests over a few keep-alive connections,
// retries with exponential backoff on transient failures (connection reset
// or refused, timeouts, truncated bodies, 5xx, 408, 429; never 404 or 403),
// and large bodies written to a `.partial` file that a later attempt, or a
// later run, continues with `Range: bytes=N-`, guarded by `If-Range: ETAG`
// so that a changed file is fetched whole again. `file://` remotes read the
// local files. The HTTP client is undici's (decision 0012), used through its
// dispatch API: a pull makes thousands of small requests, and a handler that
// gathers the body's chunks costs less per request than a response stream.

import fs from 'node:fs';
import { createRequire } from 'node:module';
import type { Dispatcher, Agent as AgentType } from 'undici';

// Agent alone, with require: undici's index also loads fetch, WebSocket,
// caches and mocks (45-59 ms of a pull's start against 19-24 ms for this
// module), and importing CommonJS from ESM has Node scan the source for
// named exports first. undici is pinned; the fetcher tests use this path.
const Agent = createRequire(import.meta.url)('undici/lib/dispatcher/agent.js') as typeof AgentType;
import { StrataError, ioError } from '../errors.js';
import { readLocal, remoteFileUrl } from './http.js';

export interface FetcherOptions {
  /** Base URL of the remote repository. */
  url: string;
  /** Requests in flight (and keep-alive connections) at most. */
  jobs: number;
  /** Attempts after the first one for a transient failure. */
  retries?: number;
  /** Give up on a request when no byte arrives for this long (ms). */
  timeoutMs?: number;
  /** First backoff delay (ms); doubled on every retry. */
  backoffMs?: number;
}

/** Bodies up to this size are kept in memory; larger ones go to a resumable `.partial` file. */
export const MEMORY_LIMIT = 1024 * 1024;
const MAX_REDIRECTS = 5;

/**
 * A fetched object: in memory, with the ArrayBuffer that may be transferred
 * to a worker along with it (nothing else uses it), or null when the body
 * shares its memory; or a download on disk.
 */
export type Fetched = { kind: 'buffer'; body: Buffer; owner: ArrayBuffer | null } | { kind: 'file'; path: string; resumedFrom: number };

/** Bytes of an unwanted body read to keep its connection; a longer one closes it. */
const DISCARD_LIMIT = 128 * 1024;

/** A failure worth retrying (the network, not the request). */
class TransientError extends Error {
  constructor(
    message: string,
    readonly data: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export class Fetcher {
  readonly base: string;
  private readonly agent: AgentType;
  private readonly retries: number;
  private readonly timeoutMs: number;
  private readonly backoffMs: number;
  /** For http(s) remotes: the origin, and the base path (ending in `/`) that repository paths are appended to. */
  private readonly origin: string | null;
  private readonly basePath: string;
  /** Body bytes received from the network (or read from file:// remotes). */
  bytesReceived = 0;
  /** Bytes a `.partial` already held when a download continued from it. */
  bytesResumed = 0;
  /** Attempts that were retried after a transient failure. */
  retryCount = 0;
  /** `.partial` files this fetcher has written to (a later attempt may continue them). */
  private readonly partialsWritten = new Set<string>();

  constructor(opts: FetcherOptions) {
    this.base = opts.url;
    const base = remoteFileUrl(opts.url, '');
    this.origin = base.protocol === 'http:' || base.protocol === 'https:' ? base.origin : null;
    this.basePath = base.pathname;
    this.retries = opts.retries ?? 5;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    // `jobs` keep-alive connections per origin; both timeouts are idle times (headers, then between body chunks).
    this.agent = new Agent({
      connections: opts.jobs,
      pipelining: 1,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
      connect: { timeout: this.timeoutMs },
    });
    this.backoffMs = opts.backoffMs ?? 200;
  }

  url(rel: string): URL {
    return remoteFileUrl(this.base, rel);
  }

  close(): void {
    this.agent.destroy().catch(() => undefined);
  }

  /** A small file (metadata), or null on 404 when `allowMissing`. */
  async getBuffer(rel: string, opts: { allowMissing?: boolean; maxBytes?: number } = {}): Promise<Buffer | null> {
    const maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
    return this.withRetries(rel, async () => {
      if (this.origin === null) return this.readFileUrl(this.url(rel), maxBytes, opts.allowMissing ?? false);
      const ex = await this.request(rel, {});
      if (ex.status === 404) {
        ex.discard();
        if (opts.allowMissing) return null;
        throw notFound(ex.url);
      }
      expectStatus(ex, [200]);
      ex.declaredLength(maxBytes);
      return ex.readAll(maxBytes);
    });
  }

  /**
   * An object of any size: small bodies come back in memory; large ones are
   * written to `partial` (continued from its current length when a previous
   * attempt or run left one, with the ETag kept beside it in `partial.etag`).
   * `noEarlierPartial` says that no earlier run left one (the caller listed the
   * directory), which spares a stat and an unlink per small object.
   */
  async getObject(rel: string, partial: string, opts: { maxBytes: number; noEarlierPartial?: boolean }): Promise<Fetched> {
    return this.withRetries(rel, async () => {
      if (this.origin === null) {
        const body = this.readFileUrl(this.url(rel), opts.maxBytes, false) as Buffer;
        // A small file may sit in Node's shared allocation pool: only a buffer that spans its whole memory moves.
        return { kind: 'buffer', body, owner: body.byteOffset === 0 && body.byteLength === body.buffer.byteLength ? (body.buffer as ArrayBuffer) : null };
      }
      const etagFile = `${partial}.etag`;
      const mayExist = !opts.noEarlierPartial || this.partialsWritten.has(partial);
      const have = mayExist ? partialLength(partial) : 0;
      const etag = have > 0 ? readSmall(etagFile) : null;
      const headers: Record<string, string> = etag !== null ? { range: `bytes=${have}-`, 'if-range': etag } : {};
      const ex = await this.request(rel, headers);
      if (ex.status === 416) {
        // The partial is as long as (or longer than) the file: start over.
        ex.discard();
        fs.rmSync(partial, { force: true });
        throw new TransientError(`${ex.url.href}: 416 for a stale partial download`);
      }
      if (ex.status === 404) {
        ex.discard();
        throw notFound(ex.url);
      }
      expectStatus(ex, [200, 206]);
      if (ex.status === 206) {
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(ex.header('content-range') ?? '');
        if (!m || Number(m[1]) !== have) {
          ex.discard();
          fs.rmSync(partial, { force: true });
          throw new TransientError(`${ex.url.href}: answered a range that does not continue the partial download`);
        }
        if (Number(m[2]) + 1 - have > opts.maxBytes) {
          ex.abort();
          throw tooLarge(ex.url, opts.maxBytes);
        }
        this.bytesResumed += have;
        await ex.toFile(partial, 'a', opts.maxBytes);
        return { kind: 'file', path: partial, resumedFrom: have };
      }
      const length = ex.declaredLength(opts.maxBytes);
      if (Number.isFinite(length) && length <= MEMORY_LIMIT) {
        if (mayExist) fs.rmSync(partial, { force: true });
        const body = await ex.readAll(opts.maxBytes);
        return { kind: 'buffer', body, owner: body.buffer as ArrayBuffer };
      }
      this.partialsWritten.add(partial);
      // A whole body: the ETag goes down first, so that a cut leaves a partial that can be continued.
      const newEtag = ex.header('etag');
      try {
        if (newEtag !== undefined && !newEtag.startsWith('W/')) fs.writeFileSync(etagFile, newEtag);
        else fs.rmSync(etagFile, { force: true });
      } catch (err) {
        ex.abort();
        throw ioError(err, 'write', etagFile);
      }
      await ex.toFile(partial, 'w', opts.maxBytes);
      return { kind: 'file', path: partial, resumedFrom: 0 };
    });
  }

  private async withRetries<T>(rel: string, attempt: () => Promise<T>): Promise<T> {
    for (let i = 0; ; i++) {
      try {
        return await attempt();
      } catch (err) {
        if (!(err instanceof TransientError)) throw err;
        if (i >= this.retries) {
          throw new StrataError('HTTP_ERROR', `${err.message} (gave up after ${i + 1} attempts)`, { url: this.url(rel).href, attempts: i + 1, ...err.data });
        }
        this.retryCount++;
        const delay = Math.min(this.backoffMs * 2 ** i, 5_000) * (0.75 + Math.random() * 0.5);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** One GET of a repository path, following redirects; network failures and 5xx become TransientError. */
  private async request(rel: string, headers: Record<string, string>): Promise<Exchange> {
    let origin = this.origin as string;
    // Repository paths are plain ASCII; anything else goes through URL for its encoding.
    let pathname = SIMPLE_PATH.test(rel) ? this.basePath + rel : null;
    let current: URL | null = null;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      if (pathname === null) {
        current ??= this.url(rel);
        if (current.protocol !== 'http:' && current.protocol !== 'https:') {
          throw new StrataError('HTTP_ERROR', `cannot fetch ${current.href}: unsupported scheme ${current.protocol}`, { url: current.href });
        }
        origin = current.origin;
        pathname = current.pathname + current.search;
      }
      const ex: Exchange = new Exchange(origin, pathname, this);
      this.agent.dispatch({ origin, path: pathname, method: 'GET', headers: { 'user-agent': 'strata', ...headers } }, ex);
      await ex.head;
      const status = ex.status;
      const location: string | undefined = ex.header('location');
      if (status >= 300 && status < 400 && status !== 304 && location !== undefined) {
        ex.discard();
        const from = ex.url;
        const next: URL = new URL(location, from);
        if (next.protocol !== from.protocol && !(from.protocol === 'http:' && next.protocol === 'https:')) {
          throw new StrataError('HTTP_ERROR', `${from.href} redirects to ${next.href}; only http and https are followed`, { url: from.href });
        }
        current = next;
        pathname = null;
        continue;
      }
      if (status >= 500 || status === 408 || status === 429) {
        ex.discard();
        throw new TransientError(`${this.url(rel).href}: HTTP ${status}`, { status });
      }
      return ex;
    }
    throw new StrataError('HTTP_ERROR', `${this.url(rel).href}: more than ${MAX_REDIRECTS} redirects`, { url: this.url(rel).href });
  }

  /** A file:// remote: read directly, counted like bytes from the network. */
  private readFileUrl(url: URL, maxBytes: number, allowMissing: boolean): Buffer | null {
    const body = readLocal(url, maxBytes, allowMissing);
    if (body) this.bytesReceived += body.length;
    return body;
  }
}

const NO_HEADERS: Buffer[] = [];
/** The placeholder of every function field (a function from the start; see Exchange). */
const nothing = (): void => undefined;

/** Characters a repository path may hold without percent-encoding. */
const SIMPLE_PATH = /^[A-Za-z0-9._~+=/-]+$/;

/**
 * One request and its response, as an undici dispatch handler: `head`
 * settles when the status and headers are in (a network failure before that
 * is a TransientError); the body then goes to memory (`readAll`), to a file
 * (`toFile`) or nowhere (`discard`). Chunks that arrive before the caller
 * chooses wait in memory.
 */
class Exchange implements Dispatcher.DispatchHandlers {
  // Every field starts with a value of the kind it keeps (a function, a
  // number): a field that changes kind later (null, then a function) makes V8
  // throw away the optimised code of everything that inlined this class.
  status = 0;
  readonly head: Promise<void>;
  private raw: Buffer[] = NO_HEADERS;
  private chunks: Buffer[] = [];
  private received = 0;
  /** Body bytes allowed; past them the exchange is aborted, with "more than `maxBytes`" as its error when that is not -1. */
  private limit = Infinity;
  private maxBytes = -1;
  /** Where body chunks go once the caller chose (`sinking`); before that they wait in `chunks`. */
  private sinking = false;
  private sink: (chunk: Buffer) => void = nothing;
  private aborter: (err?: Error) => void = nothing;
  private headSettled = false;
  private settleHead: (err: Error | null) => void = nothing;
  /** Whether the body has ended, and how it failed (null: it did not). */
  private ended = false;
  private failure: Error | null = null;
  private onEnd: (err: Error | null) => void = nothing;
  /** Our own reason for aborting (too large, a failed write): reported as it is. */
  private reason: Error | null = null;

  constructor(
    private readonly origin: string,
    private readonly pathname: string,
    private readonly counter: { bytesReceived: number },
  ) {
    this.head = new Promise<void>((resolve, reject) => {
      this.settleHead = (err) => (err ? reject(err) : resolve());
    });
  }

  get url(): URL {
    return new URL(this.pathname, this.origin);
  }

  /** The Content-Length the answer declares (NaN when none); more than `maxBytes` aborts it and throws. */
  declaredLength(maxBytes: number): number {
    const length = Number(this.header('content-length'));
    if (length > maxBytes) {
      const err = tooLarge(this.url, maxBytes);
      this.abort(err);
      throw err;
    }
    return length;
  }

  /** A response header's value (the first, when repeated); `name` in lower case. */
  header(name: string): string | undefined {
    for (let i = 0; i + 1 < this.raw.length; i += 2) {
      const key = this.raw[i];
      if (key.length === name.length && key.toString('latin1').toLowerCase() === name) return this.raw[i + 1].toString('latin1');
    }
    return undefined;
  }

  onConnect(abort: (err?: Error) => void): void {
    this.aborter = abort;
  }

  onHeaders(status: number, raw: Buffer[]): boolean {
    // 1xx informational answers come before the real one.
    if (status < 200) return true;
    this.status = status;
    this.raw = raw;
    this.headSettled = true;
    this.settleHead(null);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.reason !== null) return false;
    this.received += chunk.length;
    this.counter.bytesReceived += chunk.length;
    if (this.received > this.limit) {
      this.abort(this.maxBytes !== -1 ? tooLarge(this.url, this.maxBytes) : undefined);
      return false;
    }
    if (this.sinking) this.sink(chunk);
    else this.chunks.push(chunk);
    return true;
  }

  onComplete(): void {
    this.finish(null);
  }

  onError(err: Error): void {
    const failure = this.reason ?? err;
    if (!this.headSettled) {
      this.headSettled = true;
      this.settleHead(networkError(this.url, failure));
      return;
    }
    this.finish(failure);
  }

  /** Stops the exchange and closes its connection; `reason` becomes the body's error. */
  abort(reason?: Error): void {
    if (this.reason !== null || this.ended) return;
    this.reason = reason ?? new Error('aborted');
    this.aborter(this.reason);
  }

  /** Reads the rest of a short body only to keep the connection; a long one closes it. */
  discard(): void {
    this.chunks = [];
    this.sinking = true;
    this.sink = nothing;
    this.maxBytes = -1;
    this.limit = this.received + DISCARD_LIMIT;
  }

  /**
   * The whole body, in a buffer whose memory belongs to this response alone
   * (it can be transferred to a worker). A body that came in one chunk is that
   * chunk, not a copy: Node reads a socket into a new buffer of exactly the
   * bytes read (this response's headers and body; without pipelining nothing
   * else shares it, and undici keeps no reference once the response is
   * complete). Copying every body took about 25 ms of a full pull's main
   * thread in a profile (decision 0012).
   */
  async readAll(maxBytes: number): Promise<Buffer> {
    this.setLimit(maxBytes, maxBytes);
    const err = await this.whenEnded();
    if (err !== null) throw err instanceof StrataError ? err : networkError(this.url, err, 'before the whole body arrived');
    if (this.chunks.length === 1) return this.chunks[0];
    const out = Buffer.allocUnsafeSlow(this.received);
    let at = 0;
    for (const c of this.chunks) at += c.copy(out, at);
    return out;
  }

  /** Writes the body into `file` (appending or from scratch), at most `maxBytes` in all; whatever arrived stays there if the connection drops. */
  async toFile(file: string, flags: 'a' | 'w', maxBytes: number): Promise<void> {
    let fd: number;
    try {
      fd = fs.openSync(file, flags, 0o644);
    } catch (err) {
      const e = ioError(err, 'write', file);
      this.abort(e);
      throw e;
    }
    let written = flags === 'a' ? fs.fstatSync(fd).size : 0;
    let failed: StrataError | null = null;
    const write = (c: Buffer): void => {
      if (failed) return;
      try {
        for (let off = 0; off < c.length; ) off += fs.writeSync(fd, c, off);
        written += c.length;
      } catch (err) {
        failed = ioError(err, 'write', file);
        this.abort(failed);
      }
    };
    try {
      const early = this.chunks.splice(0);
      this.sinking = true;
      this.sink = write;
      this.setLimit(maxBytes - written, maxBytes);
      for (const c of early) write(c);
      const err = await this.whenEnded();
      if (failed) throw failed;
      if (err !== null) throw err instanceof StrataError ? err : networkError(this.url, err, `after ${written} bytes`);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Allows `bytes` of the body; past them it fails as more than `maxBytes` (at once when more has arrived already). */
  private setLimit(bytes: number, maxBytes: number): void {
    this.limit = bytes;
    this.maxBytes = maxBytes;
    if (this.received > bytes) {
      const err = tooLarge(this.url, maxBytes);
      this.abort(err);
      throw err;
    }
  }

  private finish(err: Error | null): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = err;
    this.onEnd(err);
  }

  private whenEnded(): Promise<Error | null> {
    if (this.ended) return Promise.resolve(this.failure);
    return new Promise((resolve) => (this.onEnd = resolve));
  }
}

function expectStatus(ex: Exchange, ok: number[]): void {
  const status = ex.status;
  if (ok.includes(status)) return;
  ex.discard();
  throw new StrataError('HTTP_ERROR', `${ex.url.href}: HTTP ${status}`, { url: ex.url.href, status });
}

function notFound(url: URL): StrataError {
  return new StrataError('HTTP_ERROR', `${url.href}: 404 Not Found`, { url: url.href, status: 404 });
}

/** A failure of the network (refused, reset, timed out, cut short): worth another attempt. */
function networkError(url: URL, err: unknown, when?: string): TransientError {
  const e = err as { code?: string; message?: string };
  const what = e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT' || e.code === 'UND_ERR_CONNECT_TIMEOUT'
    ? 'no answer in time'
    : e.code === 'UND_ERR_SOCKET' ? 'connection closed' : (e.code ?? e.message ?? String(err));
  return new TransientError(`${url.href}: ${what}${when ? ` ${when}` : ''}`, { errno: e.code });
}

function tooLarge(url: URL, maxBytes: number): StrataError {
  return new StrataError('HTTP_ERROR', `${url.href}: more than the ${maxBytes} bytes allowed`, { url: url.href });
}

function partialLength(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

function readSmall(file: string): string | null {
  try {
    const text = fs.readFileSync(file, 'utf8').trim();
    return text === '' ? null : text;
  } catch {
    return null;
  }
}
