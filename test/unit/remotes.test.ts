// Remotes in the config (as ostree writes them) and `remote refs`: the
// summary fetched over HTTP from a real server on 127.0.0.1, verified with
// the remote's key before anything is believed.

import fs from 'node:fs';
import path from 'node:path';
import http from 'node:http';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo } from '../../src/repo/repo.js';
import { commit } from '../../src/repo/commit.js';
import { updateSummary } from '../../src/remote/summary.js';
import { buildServer, listen, shutdown } from '../../src/remote/serve.js';
import { generateKeyPair } from '../../src/remote/sign.js';
import { addRemote, deleteRemote, fetchRemoteSummary, getRemote, listRemotes, remoteKeys } from '../../src/remote/remotes.js';
import { fetchBytes, remoteFileUrl } from '../../src/remote/http.js';
import { strata, tmpDir } from '../helpers/fixtures.js';
import { codeOf, codeOfAsync } from '../helpers/errors.js';

process.env.STRATA_WORKERS ??= '1';


describe('remotes in the config', () => {
  let dir: string;
  let repo: string;
  const key = generateKeyPair();
  const key2 = generateKeyPair();

  beforeAll(() => {
    dir = tmpDir('strata-remotes-');
    repo = path.join(dir, 'repo');
    Repo.init(repo, 'archive');
    fs.appendFileSync(path.join(repo, 'config'), '\n# kept\n[x-other]\nanswer=42\n');
    fs.writeFileSync(path.join(dir, 'one.pub'), key.publicKey + '\n');
    fs.writeFileSync(path.join(dir, 'two.pub'), `${key.publicKey}\n${key2.publicKey}\n`);
  });

  it('writes a remote as ostree does, keeping every other line', () => {
    const before = fs.readFileSync(path.join(repo, 'config'), 'utf8');
    addRemote({ repo, name: 'origin', url: 'http://127.0.0.1:8080/repo/', signVerify: path.join(dir, 'one.pub') });
    expect(fs.readFileSync(path.join(repo, 'config'), 'utf8')).toBe(
      before + `\n[remote "origin"]\nurl=http://127.0.0.1:8080/repo/\ngpg-verify=false\nsign-verify=ed25519\nsign-verify-summary=ed25519\nverification-ed25519-key=${key.publicKey}\n`,
    );
    expect(getRemote({ repo, name: 'origin' })).toEqual({
      name: 'origin', url: 'http://127.0.0.1:8080/repo/', signVerify: true, signVerifySummary: true, verificationKey: key.publicKey, verificationFile: null, gpgVerify: false,
    });
  });

  it('keeps a file of several keys as verification-ed25519-file; an inline key as it is', () => {
    addRemote({ repo, name: 'multi', url: 'https://example.com/r', signVerify: path.join(dir, 'two.pub') });
    const multi = getRemote({ repo, name: 'multi' });
    expect(multi.verificationFile).toBe(path.join(dir, 'two.pub'));
    expect(remoteKeys(multi).map((k) => k.public.toString('base64'))).toEqual([key.publicKey, key2.publicKey]);
    addRemote({ repo, name: 'inline', url: 'file:///srv/repo', signVerify: key2.publicKey });
    expect(getRemote({ repo, name: 'inline' }).verificationKey).toBe(key2.publicKey);
    addRemote({ repo, name: 'open', url: 'http://127.0.0.1:1/', noSignVerify: true });
    expect(getRemote({ repo, name: 'open' })).toMatchObject({ signVerify: false, signVerifySummary: false });
    expect(listRemotes({ repo }).map((r) => r.name)).toEqual(['origin', 'multi', 'inline', 'open']);
  });

  it('refuses bad names, URLs, keys and duplicates, writing nothing', () => {
    const before = fs.readFileSync(path.join(repo, 'config'), 'utf8');
    const cases: [string, () => unknown][] = [
      ['INVALID_REMOTE', () => addRemote({ repo, name: 'a b', url: 'http://x/' })],
      ['INVALID_REMOTE', () => addRemote({ repo, name: '-x', url: 'http://x/' })],
      ['INVALID_REMOTE', () => addRemote({ repo, name: 'x"]\n[core', url: 'http://x/' })],
      ['INVALID_REMOTE', () => addRemote({ repo, name: 'x', url: 'not a url' })],
      ['INVALID_REMOTE', () => addRemote({ repo, name: 'x', url: 'ftp://x/' })],
      ['INVALID_REMOTE', () => addRemote({ repo, name: 'x', url: 'http://x/\nurl=http://evil/' })],
      ['INVALID_REMOTE', () => addRemote({ repo, name: 'x', url: 'http://user:pw@x/' })],
      ['KEY_INVALID', () => addRemote({ repo, name: 'x', url: 'http://x/', signVerify: 'nonsense' })],
      ['KEY_INVALID', () => addRemote({ repo, name: 'x', url: 'http://x/', signVerify: key.secretKey })],
      ['USAGE', () => addRemote({ repo, name: 'x', url: 'http://x/', signVerify: key.publicKey, noSignVerify: true })],
      ['REMOTE_EXISTS', () => addRemote({ repo, name: 'origin', url: 'http://x/' })],
      ['REMOTE_NOT_FOUND', () => deleteRemote({ repo, name: 'nope' })],
      ['REMOTE_NOT_FOUND', () => getRemote({ repo, name: 'nope' })],
    ];
    for (const [code, fn] of cases) expect(codeOf(fn)).toBe(code);
    expect(fs.readFileSync(path.join(repo, 'config'), 'utf8')).toBe(before);
  });

  it('deletes a remote and nothing else', () => {
    const before = fs.readFileSync(path.join(repo, 'config'), 'utf8');
    addRemote({ repo, name: 'temp', url: 'http://127.0.0.1:2/' });
    deleteRemote({ repo, name: 'temp' });
    expect(fs.readFileSync(path.join(repo, 'config'), 'utf8')).toBe(before);
    deleteRemote({ repo, name: 'multi' });
    expect(listRemotes({ repo }).map((r) => r.name)).toEqual(['origin', 'inline', 'open']);
    expect(fs.readFileSync(path.join(repo, 'config'), 'utf8')).toMatch(/# kept\n\[x-other\]\nanswer=42\n/);
  });

  it('reads sign-verify the way libostree does: booleans or a list of types', () => {
    const other = path.join(tmpDir('strata-remotes-read-'), 'repo');
    Repo.init(other, 'archive');
    fs.appendFileSync(
      path.join(other, 'config'),
      '[remote "t"]\nurl=http://x/\nsign-verify=true\n[remote "f"]\nurl=http://x/\nsign-verify=0\n[remote "g"]\nurl=http://x/\nsign-verify=gpg\n' +
        `[remote "s"]\nurl=http://x/\nsign-verify=ed25519;\nsign-verify-summary=false\nverification-ed25519-key=${key.publicKey}\n`,
    );
    expect(getRemote({ repo: other, name: 't' })).toMatchObject({ signVerify: true, signVerifySummary: true, gpgVerify: true });
    // `true` and no key: strata refuses rather than trusting.
    expect(codeOf(() => remoteKeys(getRemote({ repo: other, name: 't' })))).toBe('KEY_INVALID');
    expect(getRemote({ repo: other, name: 'f' })).toMatchObject({ signVerify: false });
    expect(codeOf(() => getRemote({ repo: other, name: 'g' }))).toBe('REPO_CONFIG');
    expect(getRemote({ repo: other, name: 's' })).toMatchObject({ signVerify: true, signVerifySummary: false });
  });
});

describe('remote refs over HTTP', () => {
  let dir: string;
  let served: string;
  let client: string;
  let server: http.Server;
  let url: string;
  let sum: string;
  const key = generateKeyPair();
  const stranger = generateKeyPair();

  beforeAll(async () => {
    dir = tmpDir('strata-remote-refs-');
    served = path.join(dir, 'served');
    client = path.join(dir, 'client');
    Repo.init(served, 'archive');
    Repo.init(client, 'bare-user');
    fs.mkdirSync(path.join(dir, 'tree'));
    fs.writeFileSync(path.join(dir, 'tree/f'), 'x');
    sum = (await commit({ repo: served, branch: 'os/stable', source: path.join(dir, 'tree'), metadata: [['version', '3']], timestamp: 1_700_000_000 })).commit;
    fs.writeFileSync(path.join(dir, 'key'), key.secretKey + '\n');
    fs.writeFileSync(path.join(dir, 'stranger'), stranger.secretKey + '\n');
    updateSummary({ repo: served, signKeyFile: path.join(dir, 'key') });
    server = buildServer({ repo: served });
    url = (await listen(server, { port: 0 })).url;
    addRemote({ repo: client, name: 'plain', url });
    addRemote({ repo: client, name: 'signed', url, signVerify: key.publicKey });
    addRemote({ repo: client, name: 'wrongkey', url, signVerify: stranger.publicKey });
    addRemote({ repo: client, name: 'local', url: pathToFileURL(served).href, signVerify: key.publicKey });
  });

  afterAll(async () => {
    await shutdown(server);
  });

  it('lists the refs of an unverified remote', async () => {
    const r = await fetchRemoteSummary({ repo: client, name: 'plain' });
    expect(r.verifiedBy).toBeNull();
    expect(r.summary.refs).toEqual([{ name: 'os/stable', checksum: sum, size: expect.any(Number), timestamp: 1_700_000_000, version: '3' }]);
  });

  it('verifies summary.sig with the remote key first', async () => {
    expect((await fetchRemoteSummary({ repo: client, name: 'signed' })).verifiedBy).toBe(key.publicKey);
    expect((await fetchRemoteSummary({ repo: client, name: 'local' })).verifiedBy).toBe(key.publicKey);
    expect(await codeOfAsync(fetchRemoteSummary({ repo: client, name: 'wrongkey' }))).toBe('SIGNATURE_INVALID');
  });

  it('refuses a summary that changed after signing, or one signed by someone else', async () => {
    const file = path.join(served, 'summary');
    const orig = fs.readFileSync(file);
    try {
      const changed = Buffer.from(orig);
      changed[10] ^= 1;
      fs.writeFileSync(file, changed);
      expect(await codeOfAsync(fetchRemoteSummary({ repo: client, name: 'signed' }))).toBe('SIGNATURE_INVALID');
      expect(await codeOfAsync(fetchRemoteSummary({ repo: client, name: 'plain' }))).not.toBe('SIGNATURE_INVALID');
    } finally {
      fs.writeFileSync(file, orig);
    }
    updateSummary({ repo: served, signKeyFile: path.join(dir, 'stranger') });
    try {
      expect(await codeOfAsync(fetchRemoteSummary({ repo: client, name: 'signed' }))).toBe('SIGNATURE_INVALID');
    } finally {
      updateSummary({ repo: served, signKeyFile: path.join(dir, 'key') });
    }
  });

  it('wants summary.sig when the remote requires signatures', async () => {
    updateSummary({ repo: served });
    try {
      expect(await codeOfAsync(fetchRemoteSummary({ repo: client, name: 'signed' }))).toBe('SIGNATURE_MISSING');
      expect((await fetchRemoteSummary({ repo: client, name: 'plain' })).summary.refs).toHaveLength(1);
    } finally {
      updateSummary({ repo: served, signKeyFile: path.join(dir, 'key') });
    }
  });

  it('says when there is no summary, no server, or an unknown remote', async () => {
    fs.renameSync(path.join(served, 'summary'), path.join(served, 'summary.away'));
    try {
      expect(await codeOfAsync(fetchRemoteSummary({ repo: client, name: 'plain' }))).toBe('SUMMARY_NOT_FOUND');
    } finally {
      fs.renameSync(path.join(served, 'summary.away'), path.join(served, 'summary'));
    }
    const down = path.join(tmpDir('strata-remote-down-'), 'repo');
    Repo.init(down, 'archive');
    const probe = http.createServer();
    const port = await new Promise<number>((resolve) => probe.listen(0, '127.0.0.1', () => resolve((probe.address() as { port: number }).port)));
    await new Promise((r) => probe.close(r));
    addRemote({ repo: down, name: 'gone', url: `http://127.0.0.1:${port}/` });
    expect(await codeOfAsync(fetchRemoteSummary({ repo: down, name: 'gone' }))).toBe('HTTP_ERROR');
    expect(await codeOfAsync(fetchRemoteSummary({ repo: client, name: 'nope' }))).toBe('REMOTE_NOT_FOUND');
  });

  it('fetchBytes caps the size, follows redirects within http, and joins URLs under the base path', async () => {
    expect(remoteFileUrl('http://h/repo', 'summary').href).toBe('http://h/repo/summary');
    expect(remoteFileUrl('http://h/repo/', 'objects/ab/c.commit').href).toBe('http://h/repo/objects/ab/c.commit');
    expect(await codeOfAsync(fetchBytes(new URL('summary', url), { maxBytes: 10 }))).toBe('HTTP_ERROR');
    const redirector = http.createServer((req, res) => {
      if (req.url === '/to-file') res.writeHead(302, { Location: 'file:///etc/passwd' }).end();
      else res.writeHead(301, { Location: `${url}summary` }).end();
    });
    const port = await new Promise<number>((resolve) => redirector.listen(0, '127.0.0.1', () => resolve((redirector.address() as { port: number }).port)));
    try {
      expect(await fetchBytes(new URL(`http://127.0.0.1:${port}/x`))).toEqual(fs.readFileSync(path.join(served, 'summary')));
      expect(await codeOfAsync(fetchBytes(new URL(`http://127.0.0.1:${port}/to-file`)))).toBe('HTTP_ERROR');
    } finally {
      await new Promise((r) => redirector.close(r));
    }
  });

  it('strata remote refs / list / delete on the command line', async () => {
    const { runAsync, CLI } = await import('../helpers/fixtures.js');
    const refs = await runAsync(process.execPath, [CLI, 'remote', 'refs', 'signed', '--repo', client]);
    expect(refs.status, refs.stderr).toBe(0);
    expect(refs.stdout).toBe(`signed:os/stable ${sum}\n`);
    const bad = await runAsync(process.execPath, [CLI, 'remote', 'refs', 'wrongkey', '--repo', client]);
    expect(bad.status).toBe(1);
    expect(bad.stderr.split('\n')).toHaveLength(2);
    const list = strata(['remote', 'list', '--repo', client]);
    expect(list.stdout.split('\n')[0]).toMatch(/^plain\s+http:\/\/127\.0\.0\.1:\d+\/\s+unverified$/);
    expect(strata(['remote', 'add', 'x', url, '--repo', client, '--sign-verify', key.publicKey, '--json']).json()).toMatchObject({ name: 'x', signVerify: true });
    expect(strata(['remote', 'add', 'x', url, '--repo', client]).status).toBe(73);
    expect(strata(['remote', 'delete', 'x', '--repo', client]).status).toBe(0);
    expect(strata(['remote', 'delete', 'x', '--repo', client]).status).toBe(66);
    expect(strata(['remote', 'add', 'y', url, '--repo', client, '--no-sign-verify']).status).toBe(0);
    expect(getRemote({ repo: client, name: 'y' }).signVerify).toBe(false);
    expect(strata(['remote', 'add', 'z', url, '--repo', client, '--no-sign-verify', '--sign-verify', key.publicKey]).status).toBe(2);
    expect(strata(['remote', 'add', 'bad name', url, '--repo', client]).status).toBe(2);
  });
});
