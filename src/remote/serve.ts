// A read-only HTTP server for an archive repository. The repository is plain
// static files (what ostree pull fetches: config, summary, summary.sig,
// objects/, refs/, deltas/, delta-indexes/), so nginx or a CDN can serve the
// same tree; this one exists so that a repository can be served with strata
// alone. It answers GET and HEAD only, never lists a directory, serves
// nothing outside those paths (no `..`, no encoded traversal, no NUL, no
// symlink leading elsewhere), and supports single byte ranges, strong ETags
// with If-None-Match / If-Range, and Last-Modified / If-Modified-Since.
//
// buildServer() makes the server without listening; listen() starts it.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { StrataError } from '../errors.js';
import { Repo } from '../repo/repo.js';

export interface ServeOptions {
  /** Path of the archive repository to serve. */
  repo: string;
  /** Called once per finished request (an access log). */
  onRequest?: (entry: AccessLogEntry) => void;
}

export interface AccessLogEntry {
  method: string;
  url: string;
  status: number;
  bytes: number;
}

/** Top-level files served, and directories served below. */
const FILES = new Set(['config', 'summary', 'summary.sig']);
const DIRS = new Set(['objects', 'refs', 'deltas', 'delta-indexes']);
/** Characters in the names ostree uses here: hex, ref fragments, modified base64. */
const SEGMENT = /^[A-Za-z0-9_+-][A-Za-z0-9._+-]*$/;

/**
 * The repository-relative path a request names, or null when it names
 * nothing we serve. Works on the raw request target, so `%2e%2e`, `%2f` and
 * `%00` are refused before anything touches the file system.
 */
export function requestPath(rawUrl: string): string | null {
  if (!rawUrl.startsWith('/')) return null;
  const q = rawUrl.search(/[?#]/);
  const rawPath = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    return null;
  }
  // An encoded slash would let one segment stand for two.
  if (/%2f/i.test(rawPath) || decoded.includes('\0') || decoded.includes('\\')) return null;
  const parts = decoded.slice(1).split('/');
  if (parts.some((p) => !SEGMENT.test(p))) return null; // also refuses '', '.', '..' and hidden names
  if (parts.length === 1) return FILES.has(parts[0]) ? parts[0] : null;
  return DIRS.has(parts[0]) ? parts.join('/') : null;
}

function contentType(rel: string): string {
  if (rel === 'config' || rel.startsWith('refs/')) return 'text/plain; charset=utf-8';
  return 'application/octet-stream';
}

/** Objects and deltas never change under their name; refs, config and the summary do. */
function isImmutable(rel: string): boolean {
  return rel.startsWith('objects/') || rel.startsWith('deltas/');
}

function etagOf(rel: string, st: fs.BigIntStats): string {
  // Objects are named by their checksum; the name is a strong validator that
  // is the same on every mirror. Anything else: inode, size and mtime.
  if (rel.startsWith('objects/')) return `"${rel.slice('objects/'.length).replace('/', '')}"`;
  return `"${st.ino.toString(16)}-${st.size.toString(16)}-${st.mtimeNs.toString(16)}"`;
}

type Range = { start: number; end: number } | 'unsatisfiable' | null;

/** A single byte range (RFC 9110 14.1.2); null means serve the whole file (absent, malformed or multiple ranges). */
export function parseRange(header: string | undefined, size: number): Range {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return null; // invalid: ignore the header
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

function etagMatches(header: string, etag: string): boolean {
  if (header.trim() === '*') return true;
  // Weak comparison, as If-None-Match uses.
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

/** Resolves a served path to a regular file inside the repository, or null. */
function openServed(root: string, rel: string): { fd: number; st: fs.BigIntStats } | null {
  let real: string;
  try {
    real = fs.realpathSync(path.join(root, rel));
  } catch {
    return null;
  }
  // A symlink may only lead to another served path of the same repository.
  const relReal = path.relative(root, real);
  if (relReal.startsWith('..') || path.isAbsolute(relReal) || requestPath('/' + relReal.split(path.sep).join('/')) === null) return null;
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO must not hang the server; O_NOFOLLOW: the
    // resolved path has no symlink left, and must not gain one.
    fd = fs.openSync(real, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch {
    return null;
  }
  const st = fs.fstatSync(fd, { bigint: true });
  if (!st.isFile()) {
    fs.closeSync(fd);
    return null;
  }
  return { fd, st };
}

export function buildServer(opts: ServeOptions): http.Server {
  const server = http.createServer(repoRequestHandler(opts));
  server.keepAliveTimeout = 5_000;
  return server;
}

/**
 * The request handler of buildServer, for mounting the same static repository
 * inside another server (the fleet server serves it under /repo/): the
 * request's url must already be relative to the repository root.
 */
export function repoRequestHandler(opts: ServeOptions): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const repo = Repo.open(opts.repo);
  if (!repo.archive) {
    throw new StrataError('REPO_MODE', `${repo.path} is a ${repo.mode} repository; serve an archive one (ostree pulls only from archive repositories over HTTP)`, { path: repo.path, mode: repo.mode });
  }
  const root = fs.realpathSync(repo.path);
  return (req, res) => {
    let bytes = 0;
    res.on('finish', () => opts.onRequest?.({ method: req.method ?? '', url: req.url ?? '', status: res.statusCode, bytes }));
    const fail = (status: number, message: string, headers: http.OutgoingHttpHeaders = {}): void => {
      const body = Buffer.from(message + '\n');
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': body.length, ...headers });
      bytes = req.method === 'HEAD' ? 0 : body.length;
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405, 'Method Not Allowed', { Allow: 'GET, HEAD' });
    const rel = requestPath(req.url ?? '');
    if (rel === null) return fail(404, 'Not Found');
    const opened = openServed(root, rel);
    if (!opened) return fail(404, 'Not Found');
    const { fd, st } = opened;
    let closed = false;
    const close = (): void => {
      if (!closed) fs.closeSync(fd);
      closed = true;
    };
    try {
      const size = Number(st.size);
      const etag = etagOf(rel, st);
      const mtime = new Date(Number(st.mtimeMs));
      const headers: http.OutgoingHttpHeaders = {
        ETag: etag,
        'Last-Modified': mtime.toUTCString(),
        'Accept-Ranges': 'bytes',
        'Cache-Control': isImmutable(rel) ? 'public, max-age=31536000, immutable' : 'no-cache',
      };
      const inm = req.headers['if-none-match'];
      const ims = req.headers['if-modified-since'];
      const notModified = inm !== undefined ? etagMatches(inm, etag) : ims !== undefined && !Number.isNaN(Date.parse(ims)) && Math.floor(mtime.getTime() / 1000) <= Math.floor(Date.parse(ims) / 1000);
      if (notModified) {
        close();
        res.writeHead(304, headers);
        return res.end();
      }
      const ifRange = req.headers['if-range'];
      const rangeApplies = ifRange === undefined || ifRange === etag || ifRange === mtime.toUTCString();
      const range = rangeApplies ? parseRange(req.headers.range, size) : null;
      if (range === 'unsatisfiable') {
        close();
        return fail(416, 'Range Not Satisfiable', { ...headers, 'Content-Range': `bytes */${size}` });
      }
      const start = range ? range.start : 0;
      const end = range ? range.end : size - 1;
      const length = Math.max(0, end - start + 1);
      res.writeHead(range ? 206 : 200, {
        ...headers,
        'Content-Type': contentType(rel),
        'Content-Length': length,
        ...(range ? { 'Content-Range': `bytes ${start}-${end}/${size}` } : {}),
      });
      if (req.method === 'HEAD' || length === 0) {
        close();
        return res.end();
      }
      const stream = fs.createReadStream('', { fd, start, end, autoClose: true });
      closed = true; // the stream owns the descriptor now
      stream.on('data', (chunk) => (bytes += chunk.length));
      stream.on('error', () => res.destroy());
      res.on('close', () => stream.destroy());
      stream.pipe(res);
    } catch (err) {
      close();
      if (!res.headersSent) fail(500, 'Internal Server Error');
      else res.destroy(err as Error);
    }
  };
}

/** Starts listening; resolves with the base URL (port 0 picks a free port). */
export function listen(server: http.Server, opts: { port?: number; host?: string } = {}): Promise<{ url: string; port: number; host: string }> {
  const host = opts.host ?? '127.0.0.1';
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(new StrataError('LISTEN_FAILED', `cannot listen on ${host}:${opts.port ?? 0}: ${err.code ?? err.message}`, { host, port: opts.port, errno: err.code }));
    };
    server.once('error', onError);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', onError);
      const addr = server.address() as AddressInfo;
      const shown = addr.family === 'IPv6' || addr.address.includes(':') ? `[${addr.address}]` : addr.address;
      resolve({ url: `http://${shown}:${addr.port}/`, port: addr.port, host: addr.address });
    });
  });
}

/** Stops accepting connections, lets requests in flight finish, and closes idle keep-alive connections. */
export function shutdown(server: http.Server, graceMs = 5_000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    timer.unref();
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}
