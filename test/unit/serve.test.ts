// strata serve on a real socket (127.0.0.1 only): what it serves, how
// (ranges, validators, content types), and what it refuses, with raw
// requests so that no client normalizes the attack paths first.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo } from '../../src/repo/repo.js';
import { commit } from '../../src/repo/commit.js';
import { updateSummary } from '../../src/remote/summary.js';
import { buildServer, listen, parseRange, requestPath, shutdown } from '../../src/remote/serve.js';
import { CLI, tmpDir } from '../helpers/fixtures.js';
import { codeOf } from '../helpers/errors.js';

process.env.STRATA_WORKERS ??= '1';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function get(port: number, urlPath: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Sends bytes as they are and returns everything the server answers until it closes (requests end with Connection: close). */
function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    // Written, not ended: a half-closed connection would stop a keep-alive exchange early.
    const sock = net.connect(port, '127.0.0.1', () => sock.write(text));
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
    sock.on('error', reject);
  });
}

const statusOf = (response: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1]);

describe('requestPath', () => {
  it.each([
    ['/config', 'config'],
    ['/summary', 'summary'],
    ['/summary.sig', 'summary.sig'],
    ['/objects/ab/cdef.commit', 'objects/ab/cdef.commit'],
    ['/refs/heads/os/x86_64/stable', 'refs/heads/os/x86_64/stable'],
    ['/deltas/Ag/syH_fr1V+x-34B0/superblock', 'deltas/Ag/syH_fr1V+x-34B0/superblock'],
    ['/delta-indexes/Ag/syH_fr1V.index', 'delta-indexes/Ag/syH_fr1V.index'],
    ['/objects/ab/cd%65f.commit?x=1', 'objects/ab/cdef.commit'],
  ])('serves %j as %j', (url, rel) => {
    expect(requestPath(url)).toBe(rel);
  });

  it.each([
    '/', '', 'config', '/tmp/x', '/state/x', '/extensions/x', '/objects', '/objects/', '/objects//ab', '/objects/../config', '/objects/./ab',
    '/%2e%2e/etc/passwd', '/objects/%2E%2E/%2e%2e/etc/passwd', '/objects%2f..%2fconfig', '/refs/heads/a%00b', '/refs/heads/a%5c..%5cb',
    '/objects/ab/%zz', '/.git/config', '/refs/heads/.lock', '/config/', '/summary/x', '//etc/passwd', '/refs\\heads',
  ])('refuses %j', (url) => {
    expect(requestPath(url)).toBeNull();
  });
});

describe('parseRange', () => {
  it.each([
    ['bytes=0-9', 100, { start: 0, end: 9 }],
    ['bytes=90-', 100, { start: 90, end: 99 }],
    ['bytes=-10', 100, { start: 90, end: 99 }],
    ['bytes=-1000', 100, { start: 0, end: 99 }],
    ['bytes=50-1000', 100, { start: 50, end: 99 }],
    ['bytes=100-', 100, 'unsatisfiable'],
    ['bytes=-0', 100, 'unsatisfiable'],
    ['bytes=0-0', 0, 'unsatisfiable'],
    ['bytes=5-1', 100, null],
    ['bytes=0-1,3-4', 100, null],
    ['items=0-1', 100, null],
    ['bytes=-', 100, null],
    [undefined, 100, null],
  ])('%j of %d bytes is %j', (header, size, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });
});

describe('serving a repository', () => {
  let dir: string;
  let repoPath: string;
  let port: number;
  let server: http.Server;
  let commitSum: string;
  const log: { url: string; status: number }[] = [];

  beforeAll(async () => {
    dir = tmpDir('strata-serve-');
    repoPath = path.join(dir, 'repo');
    Repo.init(repoPath, 'archive');
    fs.mkdirSync(path.join(dir, 'tree'));
    fs.writeFileSync(path.join(dir, 'tree/big'), Buffer.alloc(200_000, 7));
    commitSum = (await commit({ repo: repoPath, branch: 'os/stable', source: path.join(dir, 'tree'), timestamp: 1_700_000_000 })).commit;
    updateSummary({ repo: repoPath });
    fs.writeFileSync(path.join(dir, 'secret'), 'outside the repository\n');
    fs.writeFileSync(path.join(repoPath, 'tmp', 'private'), 'staging\n');
    fs.symlinkSync(path.join(dir, 'secret'), path.join(repoPath, 'refs/heads/escape'));
    fs.symlinkSync('../../tmp/private', path.join(repoPath, 'refs/heads/into-tmp'));
    fs.symlinkSync('os/stable', path.join(repoPath, 'refs/heads/alias'));
    fs.symlinkSync(dir, path.join(repoPath, 'refs/heads/dir-escape'));
    server = buildServer({ repo: repoPath, onRequest: (e) => log.push({ url: e.url, status: e.status }) });
    port = (await listen(server, { port: 0 })).port;
  });

  afterAll(async () => {
    await shutdown(server);
  });

  const objectUrl = (sum: string, ext: string): string => `/objects/${sum.slice(0, 2)}/${sum.slice(2)}.${ext}`;

  it('serves an object with its length, a strong ETag, Last-Modified and octet-stream', async () => {
    const r = await get(port, objectUrl(commitSum, 'commit'));
    const file = path.join(repoPath, objectUrl(commitSum, 'commit'));
    expect(r.status).toBe(200);
    expect(r.body).toEqual(fs.readFileSync(file));
    expect(r.headers['content-type']).toBe('application/octet-stream');
    expect(r.headers['content-length']).toBe(String(r.body.length));
    expect(r.headers.etag).toBe(`"${commitSum}.commit"`);
    expect(r.headers['last-modified']).toBe(new Date(fs.statSync(file).mtimeMs).toUTCString());
    expect(r.headers['accept-ranges']).toBe('bytes');
    expect(r.headers['cache-control']).toContain('immutable');
  });

  it('serves config and refs as text, and the summary', async () => {
    const c = await get(port, '/config');
    expect(c.status).toBe(200);
    expect(c.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(c.body.toString()).toContain('mode=archive-z2');
    const ref = await get(port, '/refs/heads/os/stable');
    expect(ref.body.toString()).toBe(commitSum + '\n');
    expect(ref.headers['cache-control']).toBe('no-cache');
    expect((await get(port, '/summary')).body).toEqual(fs.readFileSync(path.join(repoPath, 'summary')));
  });

  it('HEAD gives the headers of GET and no body', async () => {
    const r = await get(port, '/summary', {}, 'HEAD');
    expect(r.status).toBe(200);
    expect(r.body).toHaveLength(0);
    expect(r.headers['content-length']).toBe(String(fs.statSync(path.join(repoPath, 'summary')).size));
  });

  it('answers a byte range with 206 and Content-Range, an unsatisfiable one with 416', async () => {
    const big = fs.readdirSync(path.join(repoPath, 'objects'), { recursive: true }).map(String).find((n) => n.endsWith('.filez')) as string;
    const url = `/objects/${big}`;
    const whole = fs.readFileSync(path.join(repoPath, 'objects', big));
    const r = await get(port, url, { Range: 'bytes=10-19' });
    expect(r.status).toBe(206);
    expect(r.body).toEqual(whole.subarray(10, 20));
    expect(r.headers['content-range']).toBe(`bytes 10-19/${whole.length}`);
    const tail = await get(port, url, { Range: 'bytes=-5' });
    expect(tail.body).toEqual(whole.subarray(whole.length - 5));
    const resume = await get(port, url, { Range: `bytes=${whole.length - 100}-` });
    expect(resume.status).toBe(206);
    expect(resume.body).toEqual(whole.subarray(whole.length - 100));
    const bad = await get(port, url, { Range: `bytes=${whole.length}-` });
    expect(bad.status).toBe(416);
    expect(bad.headers['content-range']).toBe(`bytes */${whole.length}`);
    // If-Range with another validator: the whole file, not a piece of a different one.
    const changed = await get(port, url, { Range: 'bytes=0-9', 'If-Range': '"something-else"' });
    expect(changed.status).toBe(200);
    expect(changed.body).toEqual(whole);
    const same = await get(port, url, { Range: 'bytes=0-9', 'If-Range': r.headers.etag as string });
    expect(same.status).toBe(206);
  });

  it('answers 304 to If-None-Match and If-Modified-Since', async () => {
    const first = await get(port, '/summary');
    const again = await get(port, '/summary', { 'If-None-Match': first.headers.etag as string });
    expect(again.status).toBe(304);
    expect(again.body).toHaveLength(0);
    expect(again.headers.etag).toBe(first.headers.etag);
    expect((await get(port, '/summary', { 'If-None-Match': '"other", ' + first.headers.etag })).status).toBe(304);
    expect((await get(port, '/summary', { 'If-None-Match': '"other"' })).status).toBe(200);
    expect((await get(port, '/summary', { 'If-Modified-Since': first.headers['last-modified'] as string })).status).toBe(304);
    expect((await get(port, '/summary', { 'If-Modified-Since': 'Thu, 01 Jan 1970 00:00:00 GMT' })).status).toBe(200);
  });

  it('changes the ETag of a file that changes', async () => {
    const before = (await get(port, '/summary')).headers.etag;
    updateSummary({ repo: repoPath, lastModified: 1 });
    const after = (await get(port, '/summary')).headers.etag;
    expect(after).not.toBe(before);
  });

  it('lists no directory and serves nothing outside the served paths', async () => {
    for (const url of ['/', '/objects', '/objects/', `/objects/${commitSum.slice(0, 2)}`, '/refs/heads', '/refs/heads/os', '/tmp/private', '/state', '/nope']) {
      expect((await get(port, url)).status, url).toBe(404);
    }
  });

  it('refuses methods other than GET and HEAD', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      const r = await get(port, '/config', {}, method);
      expect(r.status, method).toBe(405);
      expect(r.headers.allow).toBe('GET, HEAD');
    }
  });

  it.each([
    'GET /../secret HTTP/1.1',
    'GET /objects/../../secret HTTP/1.1',
    'GET /%2e%2e/secret HTTP/1.1',
    'GET /objects/%2e%2e/%2e%2e/secret HTTP/1.1',
    'GET /refs%2f..%2f..%2fsecret HTTP/1.1',
    'GET /refs/heads/..%5c..%5c..%5csecret HTTP/1.1',
    'GET /refs/heads/os%00/stable HTTP/1.1',
    'GET ../secret HTTP/1.1',
    'GET http://127.0.0.1/../secret HTTP/1.1',
    'GET /refs/heads/escape HTTP/1.1',
    'GET /refs/heads/into-tmp HTTP/1.1',
    'GET /refs/heads/dir-escape/secret HTTP/1.1',
  ])('path traversal: %s is refused', async (line) => {
    const response = await raw(port, `${line}\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect([400, 404]).toContain(statusOf(response));
    expect(response).not.toContain('outside the repository');
    expect(response).not.toContain('staging');
  });

  it('follows a symlink that stays on a served path', async () => {
    const r = await get(port, '/refs/heads/alias');
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe(commitSum + '\n');
  });

  it('does not hang on a FIFO', async () => {
    const fifo = path.join(repoPath, 'refs/heads/fifo');
    const { execFileSync } = await import('node:child_process');
    execFileSync('mkfifo', [fifo]);
    try {
      expect((await get(port, '/refs/heads/fifo')).status).toBe(404);
    } finally {
      fs.rmSync(fifo);
    }
  });

  it('keeps a connection alive across requests', async () => {
    const two = `GET /config HTTP/1.1\r\nHost: x\r\n\r\nGET /summary HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`;
    const response = await raw(port, two);
    expect(response.match(/^HTTP\/1\.1 200 OK/gm)).toHaveLength(2);
  });

  it('reports every request to onRequest', () => {
    expect(log.some((e) => e.url === '/config' && e.status === 200)).toBe(true);
    expect(log.some((e) => e.status === 405)).toBe(true);
  });

  it('serves only archive repositories', () => {
    const bare = path.join(tmpDir('strata-serve-bare-'), 'repo');
    Repo.init(bare, 'bare-user');
    expect(codeOf(() => buildServer({ repo: bare }))).toBe('REPO_MODE');
  });

  it('reports a port in use as LISTEN_FAILED', async () => {
    const other = buildServer({ repo: repoPath });
    await expect(listen(other, { port })).rejects.toMatchObject({ code: 'LISTEN_FAILED' });
  });
});

describe('strata serve', () => {
  it('prints its URL (--port 0 --json), serves, and stops cleanly on SIGTERM', async () => {
    const dir = tmpDir('strata-serve-cli-');
    const repo = path.join(dir, 'repo');
    Repo.init(repo, 'archive');
    const child = spawn(process.execPath, [CLI, 'serve', '--repo', repo, '--port', '0', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d;
        if (out.includes('}')) resolve(out);
      });
      child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
    });
    const { url } = JSON.parse(line) as { url: string };
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const r = await get(Number(new URL(url).port), '/config');
    expect(r.status).toBe(200);
    const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
    expect(stderr).toMatch(/GET \/config 200/);
  });

  it('refuses a bare-user repository with one line and exit 65', async () => {
    const repo = path.join(tmpDir('strata-serve-cli-bare-'), 'repo');
    Repo.init(repo, 'bare-user');
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(process.execPath, [CLI, 'serve', '--repo', repo, '--port', '0'], { encoding: 'utf8' });
    expect(r.status).toBe(65);
    expect(r.stderr.split('\n')).toHaveLength(2);
  });
});
