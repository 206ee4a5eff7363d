// Distribution against the real thing: Debian's `ostree` 2022.7 pulls from
// `strata serve` and from Debian's nginx serving the same repository, and
// fscks what it pulled; the commit's ed25519 signature travels along in the
// .commitmeta and strata verifies it in ostree's copy; ostree reads the
// remotes strata writes. Network traffic stays on 127.0.0.1.
//
// This ostree is built without libsodium (`ostree --version` lists no
// sign-ed25519), so it cannot check ed25519 signatures itself: given a
// remote that requires them it must refuse to pull, and that is tested too.

import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, makeTree, ostree, rootfsPair, runAsync, sh, startStrataServe, strata, tmpDir } from '../helpers/fixtures.js';
import { NGINX, startNginx, stop } from '../helpers/nginx.js';

const hasOstree = spawnSync('ostree', ['--version']).status === 0;
const ostreeHasEd25519 = hasOstree && /sign-ed25519/.test(spawnSync('ostree', ['--version'], { encoding: 'utf8' }).stdout);

function ok(r: { status: number | null; stderr: string; stdout: string }, what: string): string {
  if (r.status !== 0) throw new Error(`${what} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}


describe.skipIf(!hasOstree)('ostree pulls what strata serves', () => {
  let work: string;
  let repo: string;
  let tree: string;
  let sum: string;
  let serve: Awaited<ReturnType<typeof startStrataServe>>;

  beforeAll(async () => {
    work = tmpDir('strata-serve-interop-');
    repo = path.join(work, 'repo');
    tree = makeTree(path.join(work, 'tree'));
    ok(strata(['init', '--repo', repo, '--mode', 'archive']), 'init');
    sum = ok(strata(['commit', '--repo', repo, '-b', 'os/x86_64/stable', '-s', 'OS 1', '--add-metadata-string', 'version=1', tree]), 'commit').trim();
    ok(strata(['keygen', '--output', path.join(work, 'key')]), 'keygen');
    ok(strata(['sign', sum, '--repo', repo, '--key', path.join(work, 'key')]), 'sign');
    ok(strata(['summary', '-u', '--repo', repo, '--sign-key', path.join(work, 'key')]), 'summary -u');
    serve = await startStrataServe(repo);
  });

  afterAll(async () => {
    if (serve) await stop(serve.child);
  });

  /** A fresh ostree repository with remote `r` (no verification) at url; pulls `os/x86_64/stable`. */
  async function ostreePull(url: string, mode: 'archive' | 'bare-user'): Promise<string> {
    const client = path.join(tmpDir('strata-pull-'), 'client');
    ok(ostree(['init', `--repo=${client}`, `--mode=${mode}`]), 'ostree init');
    ok(ostree(['remote', 'add', `--repo=${client}`, '--no-gpg-verify', 'r', url]), 'ostree remote add');
    // Async: the server may be this process's neighbour; never block while a pull runs.
    ok(await runAsync('ostree', ['pull', `--repo=${client}`, 'r', 'os/x86_64/stable']), 'ostree pull');
    return client;
  }

  for (const mode of ['archive', 'bare-user'] as const) {
    it(`into a ${mode} repository: same commit, fsck clean, signature pulled, tree intact`, async () => {
      const client = await ostreePull(serve.url, mode);
      expect(ok(ostree(['rev-parse', `--repo=${client}`, 'r:os/x86_64/stable']), 'rev-parse').trim()).toBe(sum);
      ok(await runAsync('ostree', ['fsck', `--repo=${client}`]), 'ostree fsck');
      const meta = (r: string) => fs.readFileSync(path.join(r, 'objects', sum.slice(0, 2), `${sum.slice(2)}.commitmeta`));
      expect(meta(client).equals(meta(repo))).toBe(true);
      // strata reads ostree's copy and verifies the signature that came with it.
      ok(strata(['sign', '--verify', 'r:os/x86_64/stable', '--repo', client, '--verify-key', path.join(work, 'key.pub')]), 'strata sign --verify');
      const out = path.join(tmpDir('strata-pull-co-'), 'co');
      ok(ostree(['checkout', `--repo=${client}`, '-U', 'r:os/x86_64/stable', out]), 'ostree checkout');
      const d = spawnSync('diff', ['-r', '--no-dereference', tree, out], { encoding: 'utf8' });
      expect(d.stdout + d.stderr).toBe('');
    });
  }

  it('ostree reads the served summary: remote refs and remote summary', async () => {
    const client = path.join(tmpDir('strata-pull-'), 'client');
    ok(ostree(['init', `--repo=${client}`, '--mode=archive']), 'ostree init');
    ok(ostree(['remote', 'add', `--repo=${client}`, '--no-gpg-verify', 'r', serve.url]), 'ostree remote add');
    expect(ok(await runAsync('ostree', ['remote', 'refs', `--repo=${client}`, 'r']), 'remote refs').trim()).toBe('r:os/x86_64/stable');
    const s = ok(await runAsync('ostree', ['remote', 'summary', `--repo=${client}`, 'r']), 'remote summary');
    expect(s).toContain(sum);
    expect(s).toContain('Version (ostree.commit.version): 1');
    // The access log shows what ostree fetched from us.
    expect(serve.log()).toMatch(/GET \/summary 200/);
    expect(serve.log()).toMatch(new RegExp(`GET /objects/${sum.slice(0, 2)}/${sum.slice(2)}\\.commitmeta 200`));
  });

  it('ostree reads the remotes strata writes', () => {
    const client = path.join(tmpDir('strata-remote-conf-'), 'client');
    ok(strata(['init', '--repo', client, '--mode', 'archive']), 'init');
    ok(strata(['remote', 'add', 'plain', serve.url, '--repo', client]), 'remote add plain');
    ok(strata(['remote', 'add', 'signed', serve.url, '--repo', client, '--sign-verify', path.join(work, 'key.pub')]), 'remote add signed');
    ok(strata(['remote', 'add', 'off', 'http://127.0.0.1:9/', '--repo', client, '--no-sign-verify']), 'remote add off');
    expect(ok(ostree(['remote', 'list', '-u', `--repo=${client}`]), 'remote list').split('\n').filter(Boolean).map((l) => l.split(/\s+/))).toEqual([
      ['off', 'http://127.0.0.1:9/'],
      ['plain', serve.url],
      ['signed', serve.url],
    ]);
    const get = (key: string): string => ok(ostree(['config', `--repo=${client}`, 'get', key]), `config get ${key}`).trim();
    expect(get('remote "signed".verification-ed25519-key')).toBe(fs.readFileSync(path.join(work, 'key.pub'), 'utf8').trim());
    expect(get('remote "signed".sign-verify')).toBe('ed25519');
    expect(get('remote "signed".gpg-verify')).toBe('false');
    expect(get('remote "off".sign-verify')).toBe('false');
    // And strata reads back what ostree writes.
    ok(ostree(['remote', 'add', `--repo=${client}`, '--no-gpg-verify', 'by-ostree', 'http://127.0.0.1:9/x']), 'ostree remote add');
    expect(strata(['remote', 'list', '--repo', client, '--json']).json<{ name: string; url: string }[]>().map((r) => `${r.name} ${r.url}`)).toEqual([
      `plain ${serve.url}`,
      `signed ${serve.url}`,
      'off http://127.0.0.1:9/',
      'by-ostree http://127.0.0.1:9/x',
    ]);
  });

  it(ostreeHasEd25519 ? 'ostree verifies the ed25519 signature when the remote requires it' : 'ostree without ed25519 support refuses a remote that requires ed25519 signatures (fails closed)', async () => {
    const client = path.join(tmpDir('strata-pull-signed-'), 'client');
    ok(ostree(['init', `--repo=${client}`, '--mode=archive']), 'ostree init');
    ok(strata(['remote', 'add', 'r', serve.url, '--repo', client, '--sign-verify', path.join(work, 'key.pub')]), 'strata remote add');
    const pull = await runAsync('ostree', ['pull', `--repo=${client}`, 'r', 'os/x86_64/stable']);
    if (ostreeHasEd25519) {
      expect(pull.status, pull.stderr).toBe(0);
      return;
    }
    expect(pull.status).not.toBe(0);
    expect(pull.stderr).toMatch(/signature type is not implemented/i);
    expect(ostree(['rev-parse', `--repo=${client}`, 'r:os/x86_64/stable']).status).not.toBe(0);
  });

  it.skipIf(!NGINX)("Debian's nginx serves the same repository: ostree pulls and fscks, strata verifies the summary", async () => {
    const nginx = await startNginx(repo);
    try {
      const client = await ostreePull(nginx.url, 'archive');
      expect(ok(ostree(['rev-parse', `--repo=${client}`, 'r:os/x86_64/stable']), 'rev-parse').trim()).toBe(sum);
      ok(await runAsync('ostree', ['fsck', `--repo=${client}`]), 'ostree fsck');
      const local = path.join(tmpDir('strata-nginx-refs-'), 'repo');
      ok(strata(['init', '--repo', local]), 'init');
      ok(strata(['remote', 'add', 'cdn', nginx.url, '--repo', local, '--sign-verify', path.join(work, 'key.pub')]), 'remote add');
      const refs = await runAsync(process.execPath, [CLI, 'remote', 'refs', 'cdn', '--repo', local, '--json']);
      expect(refs.status, refs.stderr).toBe(0);
      expect(JSON.parse(refs.stdout)).toMatchObject({ verifiedBy: fs.readFileSync(path.join(work, 'key.pub'), 'utf8').trim(), refs: [{ name: 'os/x86_64/stable', checksum: sum }] });
    } finally {
      await stop(nginx.child);
    }
  });

  const pair = rootfsPair();
  it.skipIf(!pair)('a real Debian root filesystem: ostree pulls rootfs-a from strata serve and fscks it', async () => {
    const big = path.join(tmpDir('strata-serve-rootfs-'), 'repo');
    ok(strata(['init', '--repo', big, '--mode', 'archive']), 'init');
    fs.appendFileSync(path.join(big, 'config'), '[archive]\nzlib-level=1\n');
    const c = await runAsync(process.execPath, [CLI, 'commit', '--repo', big, '-b', 'os/x86_64/stable', '--no-bindings', pair!.a]);
    ok(c, 'commit rootfs-a');
    ok(strata(['summary', '-u', '--repo', big]), 'summary -u');
    const s = await startStrataServe(big);
    try {
      const client = await ostreePull(s.url, 'archive');
      expect(ok(ostree(['rev-parse', `--repo=${client}`, 'r:os/x86_64/stable']), 'rev-parse').trim()).toBe(c.stdout.trim());
      ok(await runAsync('ostree', ['fsck', `--repo=${client}`]), 'ostree fsck');
      // Every object arrived (ostree recompresses content at its own level, so compare names, not sizes).
      const names = (r: string) => sh('find', [path.join(r, 'objects'), '-type', 'f', '-printf', '%P\n']).split('\n').filter(Boolean).sort();
      expect(names(client)).toEqual(names(big));
    } finally {
      await stop(s.child);
    }
  }, 300_000);
});
