// The pull's HTTP layer on its own, against servers on 127.0.0.1: redirects
// (same origin and another one), bodies over the size cap with and without
// Content-Length, a connection kept after a refused body, 404 and retried
// 5xx, and a large download cut half-way that continues with Range.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fetcher, MEMORY_LIMIT } from '../../src/remote/fetcher.js';
import { StrataError } from '../../src/errors.js';
import { tmpDir } from '../helpers/fixtures.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

async function listen(handler: Handler): Promise<{ url: string; server: http.Server; sockets: Set<unknown> }> {
  const server = http.createServer(handler);
  const sockets = new Set<unknown>();
  server.on('connection', (s) => sockets.add(s));
  const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
  return { url: `http://127.0.0.1:${port}`, server, sockets };
}

const big = Buffer.alloc(MEMORY_LIMIT * 3, 7);
for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;

describe('Fetcher', () => {
  let other: Awaited<ReturnType<typeof listen>>;
  let main: Awaited<ReturnType<typeof listen>>;
  const hits = new Map<string, number>();
  let cutOnce = true;

  beforeAll(async () => {
    other = await listen((req, res) => {
      res.writeHead(200, { 'content-length': '5' }).end('there');
    });
    main = await listen((req, res) => {
      const url = req.url ?? '';
      hits.set(url, (hits.get(url) ?? 0) + 1);
      if (url === '/repo/moved') return res.writeHead(302, { location: '/repo/here' }).end();
      if (url === '/repo/away') return res.writeHead(301, { location: `${other.url}/x` }).end();
      if (url === '/repo/to-ftp') return res.writeHead(302, { location: 'ftp://127.0.0.1/x' }).end();
      if (url === '/repo/here') return res.writeHead(200, { 'content-length': '4' }).end('here');
      if (url === '/repo/declared-big') return res.writeHead(200, { 'content-length': '5000' }).end(Buffer.alloc(5000));
      if (url === '/repo/chunked-big') {
        // No Content-Length: the cap is found while reading.
        res.writeHead(200);
        for (let i = 0; i < 10; i++) res.write(Buffer.alloc(1000, 1));
        return res.end();
      }
      if (url === '/repo/flaky') {
        if ((hits.get(url) ?? 0) <= 2) return res.writeHead(503).end('busy');
        return res.writeHead(200, { 'content-length': '2' }).end('ok');
      }
      if (url === '/repo/objects/ab/large.filez') {
        const range = req.headers.range;
        const etag = '"v1"';
        if (range && req.headers['if-range'] === etag) {
          const from = Number(/^bytes=(\d+)-$/.exec(range)?.[1]);
          res.writeHead(206, { 'content-length': String(big.length - from), 'content-range': `bytes ${from}-${big.length - 1}/${big.length}`, etag });
          return res.end(big.subarray(from));
        }
        res.writeHead(200, { 'content-length': String(big.length), etag });
        if (cutOnce) {
          cutOnce = false;
          // Half the body, then the connection drops.
          return res.write(big.subarray(0, big.length / 2), () => res.socket?.destroy());
        }
        return res.end(big);
      }
      res.writeHead(404).end('no');
    });
  });

  afterAll(async () => {
    for (const s of [main, other]) {
      s.server.closeAllConnections();
      await new Promise((r) => s.server.close(r));
    }
  });

  const fetcher = (): Fetcher => new Fetcher({ url: `${main.url}/repo`, jobs: 2, retries: 3, backoffMs: 10, timeoutMs: 5_000 });

  it('follows redirects within the origin and to another http origin; refuses other schemes', async () => {
    const f = fetcher();
    try {
      expect((await f.getBuffer('moved'))?.toString()).toBe('here');
      expect((await f.getBuffer('away'))?.toString()).toBe('there');
      const e = await f.getBuffer('to-ftp').catch((err: unknown) => err);
      expect(e).toBeInstanceOf(StrataError);
      expect((e as StrataError).message).toMatch(/redirects to ftp:\/\/.*only http and https are followed/);
    } finally {
      f.close();
    }
  });

  it('refuses a body over the cap, declared or found while reading, and the fetcher goes on working', async () => {
    const f = fetcher();
    try {
      for (const rel of ['declared-big', 'chunked-big']) {
        const e = await f.getBuffer(rel, { maxBytes: 4096 }).catch((err: unknown) => err);
        expect(e).toBeInstanceOf(StrataError);
        expect((e as StrataError).message).toBe(`${main.url}/repo/${rel}: more than the 4096 bytes allowed`);
      }
      expect((await f.getBuffer('here'))?.toString()).toBe('here');
    } finally {
      f.close();
    }
  });

  it('404 is an error, or null when allowed; 503 is retried with backoff', async () => {
    const f = fetcher();
    try {
      expect(await f.getBuffer('nothing', { allowMissing: true })).toBeNull();
      const e = await f.getBuffer('nothing').catch((err: unknown) => err);
      expect((e as StrataError).message).toBe(`${main.url}/repo/nothing: 404 Not Found`);
      expect((await f.getBuffer('flaky'))?.toString()).toBe('ok');
      expect(f.retryCount).toBe(2);
    } finally {
      f.close();
    }
  });

  it('writes a large object to its partial file and continues a cut download with Range and If-Range', async () => {
    const dir = tmpDir('fetcher');
    const partial = path.join(dir, 'large.filez.partial');
    const f = fetcher();
    try {
      const got = await f.getObject('objects/ab/large.filez', partial, { maxBytes: 64 * MEMORY_LIMIT });
      expect(got).toEqual({ kind: 'file', path: partial, resumedFrom: big.length / 2 });
      expect(fs.readFileSync(partial).equals(big)).toBe(true);
      expect(f.bytesResumed).toBe(big.length / 2);
      expect(f.retryCount).toBe(1);
      expect(fs.readFileSync(`${partial}.etag`, 'utf8')).toBe('"v1"');
    } finally {
      f.close();
    }
  });

  it('small objects come back in memory, with memory of their own that can move to a worker', async () => {
    const f = fetcher();
    try {
      const got = await f.getObject('here', '/nonexistent/partial', { maxBytes: 1024, noEarlierPartial: true });
      expect(got.kind).toBe('buffer');
      const { body, owner } = got as { body: Buffer; owner: ArrayBuffer | null };
      expect(body.toString()).toBe('here');
      expect(f.bytesReceived).toBe(4);
      expect(owner).toBe(body.buffer);
      // Moved as to a worker: the bytes go along, and no other buffer here loses its memory.
      const bystander = Buffer.from('unrelated');
      const moved = structuredClone(body, { transfer: [owner as ArrayBuffer] }) as Uint8Array;
      expect(Buffer.from(moved).toString()).toBe('here');
      expect(body.length).toBe(0);
      expect(bystander.toString()).toBe('unrelated');
      // The next answer on the same connection arrives in memory of its own.
      const again = (await f.getObject('here', '/nonexistent/partial', { maxBytes: 1024, noEarlierPartial: true })) as { body: Buffer; owner: ArrayBuffer | null };
      expect(again.body.toString()).toBe('here');
      expect(again.owner).not.toBe(owner);
    } finally {
      f.close();
    }
  });
});
