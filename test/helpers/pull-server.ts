// `strata serve`'s own request handler on 127.0.0.1, wrapped so that tests
// can make the network misbehave: slow answers, a connection cut after some
// bytes, a stall (no more bytes, connection left open), a body shorter than
// its Content-Length closed cleanly, wrong bytes, 500s and 503s. Every
// request is logged with its Range header, the bytes that left and the fault
// it met.

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
  /** Answer 500 to a matching request (every time this returns true). */
  status500?: (url: string) => boolean;
  /**
   * Stall a matching request: send this many body bytes (0: not even the
   * headers), then nothing more, the connection left open until the client
   * gives up or the server closes.
   */
  stall?: (url: string) => number | null;
  /** Send the full Content-Length header but only this many body bytes, then close the connection cleanly (FIN, not a reset). */
  truncate?: (url: string) => number | null;
}

export type Fault = 'cut' | 'stall' | 'truncate' | 'corrupt' | '500' | '503';

export interface LoggedRequest {
  url: string;
  range: string | undefined;
  status: number;
  bytes: number;
  /** The fault this request met, if any (a fault past the body's end never fires and is not logged). */
  fault?: Fault;
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
        entry.fault = '503';
        res.writeHead(503, { 'Content-Length': 0 });
        return void res.end();
      }
      if (b.status500?.(url)) {
        entry.status = 500;
        entry.fault = '500';
        res.writeHead(500, { 'Content-Length': 0 });
        return void res.end();
      }
      // Where the body stops, and how: a reset, silence, or a clean close.
      let stop: { at: number; how: 'cut' | 'stall' | 'truncate' } | null = null;
      const cutAt = cutDone.has(url) ? null : (b.cutAfter?.(url) ?? null);
      const stallAt = b.stall?.(url) ?? null;
      const truncateAt = b.truncate?.(url) ?? null;
      if (cutAt !== null) stop = { at: cutAt, how: 'cut' };
      else if (stallAt !== null) stop = { at: stallAt, how: 'stall' };
      else if (truncateAt !== null) stop = { at: truncateAt, how: 'truncate' };
      if (stop?.how === 'stall' && stop.at === 0) {
        // Not even a status line; the socket stays open.
        entry.fault = 'stall';
        return;
      }
      const flip = b.corrupt?.(url) ?? false;
      const write = res.write.bind(res) as (chunk: unknown, ...rest: unknown[]) => boolean;
      const end = res.end.bind(res) as (chunk?: unknown, ...rest: unknown[]) => http.ServerResponse;
      let sent = 0;
      let flipped = false;
      let stopped = false;
      let releaseAt = 0;
      const alter = (chunk: unknown): unknown => {
        if (!flip || flipped || !Buffer.isBuffer(chunk) || chunk.length === 0) return chunk;
        flipped = true;
        entry.fault = 'corrupt';
        const copy = Buffer.from(chunk);
        copy[copy.length - 1] ^= 0xff;
        return copy;
      };
      res.write = ((chunk: unknown, ...rest: unknown[]): boolean => {
        entry.status = res.statusCode;
        if (stopped) return false;
        if (Buffer.isBuffer(chunk) && stop !== null) {
          if (sent + chunk.length >= stop.at) {
            write(alter(chunk.subarray(0, stop.at - sent)));
            entry.bytes += stop.at - sent;
            entry.fault = stop.how;
            stopped = true;
            if (stop.how === 'cut') {
              cutDone.add(url);
              // Let the bytes leave, then drop the connection mid-body.
              setImmediate(() => res.socket?.destroy());
            } else if (stop.how === 'truncate') {
              // Fewer bytes than Content-Length said, then an orderly close.
              setImmediate(() => res.socket?.end());
            }
            // A stall sends nothing more; the read stream waits for a drain that never comes.
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
        if (stopped) return res;
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
