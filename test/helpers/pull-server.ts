// `strata serve`'s own request handler on 127.0.0.1, wrapped so that tests
// can make the network misbehave: slow answers, a connection cut after some
// bytes, wrong bytes for one object, transient 503s. Every request is logged
// with its Range header and the bytes that left.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildServer, shutdown } from '../../src/remote/serve.js';

export interface Misbehaviour {
  /** Wait this long before answering each request (ms). */
  delayMs?: number;
  /** Send only this many body bytes of a matching request, then destroy the socket (once per URL). */
  cutAfter?: (url: string) => number | null;
  /** Flip a byte in the body of matching requests (every time). */
  corrupt?: (url: string) => boolean;
  /** Answer 503 to matching requests this many times first. */
  fail503?: (url: string) => number;
  /** Pause this long after each body chunk (a slow link). */
  chunkDelayMs?: number;
}

export interface LoggedRequest {
  url: string;
  range: string | undefined;
  status: number;
  bytes: number;
}

export interface TestServer {
  url: string;
  log: LoggedRequest[];
  behaviour: Misbehaviour;
  close(): Promise<void>;
}

export async function serveRepo(repo: string, behaviour: Misbehaviour = {}): Promise<TestServer> {
  const inner = buildServer({ repo });
  const handler = inner.listeners('request')[0] as http.RequestListener;
  const log: LoggedRequest[] = [];
  const cutDone = new Set<string>();
  const failed = new Map<string, number>();
  const state: TestServer = { url: '', log, behaviour, close: async () => undefined };
  const server = http.createServer((req, res) => {
    const url = req.url ?? '';
    const b = state.behaviour;
    const entry: LoggedRequest = { url, range: req.headers.range, status: 0, bytes: 0 };
    log.push(entry);
    const go = (): void => {
      const n503 = b.fail503?.(url) ?? 0;
      if ((failed.get(url) ?? 0) < n503) {
        failed.set(url, (failed.get(url) ?? 0) + 1);
        entry.status = 503;
        res.writeHead(503, { 'Content-Length': 0 });
        return void res.end();
      }
      const cut = cutDone.has(url) ? null : (b.cutAfter?.(url) ?? null);
      const flip = b.corrupt?.(url) ?? false;
      const write = res.write.bind(res) as (chunk: unknown, ...rest: unknown[]) => boolean;
      const end = res.end.bind(res) as (chunk?: unknown, ...rest: unknown[]) => http.ServerResponse;
      let sent = 0;
      let flipped = false;
      let releaseAt = 0;
      const alter = (chunk: unknown): unknown => {
        if (!flip || flipped || !Buffer.isBuffer(chunk) || chunk.length === 0) return chunk;
        flipped = true;
        const copy = Buffer.from(chunk);
        copy[copy.length - 1] ^= 0xff;
        return copy;
      };
      res.write = ((chunk: unknown, ...rest: unknown[]): boolean => {
        entry.status = res.statusCode;
        if (Buffer.isBuffer(chunk) && cut !== null) {
          if (sent + chunk.length >= cut) {
            write(chunk.subarray(0, cut - sent));
            entry.bytes += cut - sent;
            cutDone.add(url);
            // Let the bytes leave, then drop the connection mid-body.
            setImmediate(() => res.socket?.destroy());
            return false;
          }
        }
        if (Buffer.isBuffer(chunk)) {
          sent += chunk.length;
          entry.bytes += chunk.length;
        }
        if (!b.chunkDelayMs) return write(alter(chunk), ...rest);
        // A slow link: each chunk leaves `chunkDelayMs` after the one before.
        const data = alter(chunk);
        releaseAt = Math.max(Date.now(), releaseAt) + b.chunkDelayMs;
        setTimeout(() => {
          if (!res.destroyed) write(data);
        }, releaseAt - Date.now());
        return true;
      }) as typeof res.write;
      res.end = ((chunk?: unknown, ...rest: unknown[]) => {
        entry.status = res.statusCode;
        if (Buffer.isBuffer(chunk)) entry.bytes += chunk.length;
        if (releaseAt <= Date.now()) return end(alter(chunk), ...rest);
        const data = alter(chunk);
        setTimeout(() => {
          if (!res.destroyed) end(data, ...rest);
        }, releaseAt - Date.now() + 1);
        return res;
      }) as typeof res.end;
      handler(req, res);
    };
    if (b.delayMs) setTimeout(go, b.delayMs);
    else go();
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  state.close = () => shutdown(server, 100);
  return state;
}
