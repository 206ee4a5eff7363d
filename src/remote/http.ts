// Downloads for remotes: one GET into memory, with a size cap, a timeout and
// a few redirects (http and https only, never to another scheme). `file://`
// URLs read the local file, as ostree allows them for remotes.

import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { fileURLToPath } from 'node:url';
import { StrataError, ioError } from '../errors.js';

export interface FetchOptions {
  /** Refuse bodies larger than this (bytes). */
  maxBytes?: number;
  /** Give up when no byte arrives for this long (ms). */
  timeoutMs?: number;
  /** Treat 404 as "absent" (null) instead of an error. */
  allowMissing?: boolean;
}

const DEFAULT_MAX = 64 * 1024 * 1024;
const MAX_REDIRECTS = 5;

/** Joins a remote's base URL and a repository-relative path (`summary`, `objects/ab/…`). */
export function remoteFileUrl(base: string, rel: string): URL {
  const u = new URL(base);
  if (!u.pathname.endsWith('/')) u.pathname += '/';
  return new URL(rel, u);
}

export async function fetchBytes(url: URL, opts: FetchOptions & { allowMissing: true }): Promise<Buffer | null>;
export async function fetchBytes(url: URL, opts?: FetchOptions): Promise<Buffer>;
export async function fetchBytes(url: URL, opts: FetchOptions = {}): Promise<Buffer | null> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX;
  if (url.protocol === 'file:') return readLocal(url, maxBytes, opts.allowMissing ?? false);
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const r = await getOnce(current, maxBytes, opts.timeoutMs ?? 30_000);
    if (r.kind === 'body') return r.body;
    if (r.kind === 'missing') {
      if (opts.allowMissing) return null;
      throw new StrataError('HTTP_ERROR', `${url.href}: 404 Not Found`, { url: url.href, status: 404 });
    }
    const next = new URL(r.location, current);
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new StrataError('HTTP_ERROR', `${current.href} redirects to ${next.protocol} URL ${next.href}; only http and https are followed`, { url: current.href });
    }
    current = next;
  }
  throw new StrataError('HTTP_ERROR', `${url.href}: more than ${MAX_REDIRECTS} redirects`, { url: url.href });
}

type Outcome = { kind: 'body'; body: Buffer } | { kind: 'missing' } | { kind: 'redirect'; location: string };

function getOnce(url: URL, maxBytes: number, timeoutMs: number): Promise<Outcome> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return Promise.reject(new StrataError('HTTP_ERROR', `cannot fetch ${url.href}: unsupported scheme ${url.protocol}`, { url: url.href }));
  }
  const get = url.protocol === 'https:' ? https.get : http.get;
  return new Promise((resolve, reject) => {
    const fail = (message: string, data: Record<string, unknown> = {}): void => reject(new StrataError('HTTP_ERROR', `${url.href}: ${message}`, { url: url.href, ...data }));
    const req = get(url, { headers: { 'User-Agent': 'strata' } }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        return resolve({ kind: 'redirect', location: res.headers.location });
      }
      if (status === 404) {
        res.resume();
        return resolve({ kind: 'missing' });
      }
      if (status !== 200) {
        res.resume();
        return fail(`HTTP ${status} ${res.statusMessage ?? ''}`.trim(), { status });
      }
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > maxBytes) {
        req.destroy();
        return fail(`${declared} bytes is more than the ${maxBytes} allowed`, { status });
      }
      const chunks: Buffer[] = [];
      let total = 0;
      res.on('data', (c: Buffer) => {
        total += c.length;
        if (total > maxBytes) {
          req.destroy();
          fail(`more than the ${maxBytes} bytes allowed`, { status });
          return;
        }
        chunks.push(c);
      });
      res.on('end', () => {
        if (!res.complete) return fail('connection closed before the whole body arrived');
        resolve({ kind: 'body', body: Buffer.concat(chunks, total) });
      });
      res.on('error', (err) => fail(err.message));
    });
    req.setTimeout(timeoutMs, () => {
      req.destroy();
      fail(`no answer within ${timeoutMs / 1000} s`);
    });
    req.on('error', (err: NodeJS.ErrnoException) => fail(err.code ?? err.message, { errno: err.code }));
  });
}

/** Reads a file:// URL as a download would: a missing file is a 404, a large one refused. */
export function readLocal(url: URL, maxBytes: number, allowMissing: boolean): Buffer | null {
  const file = fileURLToPath(url);
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new StrataError('HTTP_ERROR', `${url.href} is not a file`, { url: url.href });
    if (st.size > maxBytes) throw new StrataError('HTTP_ERROR', `${url.href}: ${st.size} bytes is more than the ${maxBytes} allowed`, { url: url.href });
    return fs.readFileSync(file);
  } catch (err) {
    if (err instanceof StrataError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      if (allowMissing) return null;
      throw new StrataError('HTTP_ERROR', `${url.href} does not exist`, { url: url.href, status: 404 });
    }
    throw ioError(err, 'read', file);
  }
}
