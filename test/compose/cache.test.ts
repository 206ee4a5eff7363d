// The compose cache (src/compose/inputs.ts): a compose whose inputs equal
// those of the compose that made the ref's commit builds nothing and writes
// nothing; any change to an input (a file's bytes, a mode in an input
// directory, a manifest key), a ref moved by someone else, or --no-cache
// builds the tree again; inputs that can change behind the manifest are
// never cached.

import fs from 'node:fs';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { compose } from '../../src/compose/compose.js';
import { inputDigest } from '../../src/compose/inputs.js';
import { loadManifest } from '../../src/compose/manifest.js';
import { writeRef } from '../../src/repo/refs.js';
import { Repo } from '../../src/repo/repo.js';
import { tmpDir } from '../helpers/fixtures.js';
import { buildDeb, cat, head, manifest, newRepo, snapshot, tarball, write } from './helpers.js';

process.env.STRATA_WORKERS ??= '1';

describe('compose cache', () => {
  let dir: string;
  let repo: string;
  let m: string;
  const TEXT = `
ref: cache/x86_64/os
version: "1"
layers:
  - dir: overlay
  - tar: extra.tar.gz
  - deb: tool_1.0_all.deb
files:
  - { path: /etc/motd, source: motd.txt }
`;
  beforeEach(() => {
    dir = tmpDir();
    write(dir, 'overlay/usr/bin/app', '#!/bin/sh\necho app\n', 0o755);
    write(dir, 'overlay/etc/app.conf', 'a=1\n');
    write(dir, 'extra/opt/extra/data.txt', 'extra\n');
    tarball(path.join(dir, 'extra'), path.join(dir, 'extra.tar.gz'), 'z');
    buildDeb(dir, 'tool', '1.0', { 'usr/bin/tool': '#!/bin/sh\n' });
    write(dir, 'motd.txt', 'hello\n');
    m = manifest(dir, TEXT);
    repo = newRepo();
  });

  it('an unchanged compose is answered from the record: same commit and report, nothing written', async () => {
    const one = await compose({ manifest: m, repo, env: {} });
    expect(one.cache.state).toBe('miss');
    expect(one.unchanged).toBe(false);
    const before = snapshot(repo);
    const two = await compose({ manifest: m, repo, env: {} });
    expect(two.cache).toEqual({ state: 'hit', inputs: one.cache.inputs });
    expect(two).toMatchObject({ commit: one.commit, parent: one.commit, unchanged: true, layers: one.layers, var: one.var });
    expect(two.stats).toEqual({ ...one.stats, objectsWritten: 0, storedBytes: 0 });
    expect(snapshot(repo)).toEqual(before);
  });

  it('each changed input builds again', async () => {
    const one = await compose({ manifest: m, repo, env: {} });
    const again = async () => compose({ manifest: m, repo, env: {} });

    fs.writeFileSync(path.join(dir, 'motd.txt'), 'changed\n');
    const a = await again();
    expect(a.cache.state).toBe('miss');
    expect(a.commit).not.toBe(one.commit);
    expect(cat(repo, 'cache/x86_64/os', '/usr/etc/motd')).toBe('changed\n');

    fs.chmodSync(path.join(dir, 'overlay/usr/bin/app'), 0o700); // a mode only: same bytes
    const b = await again();
    expect(b.cache.state).toBe('miss');
    expect(b.commit).not.toBe(a.commit);

    write(dir, 'extra/opt/extra/data.txt', 'extra 2\n');
    tarball(path.join(dir, 'extra'), path.join(dir, 'extra.tar.gz'), 'z');
    const c = await again();
    expect(c.cache.state).toBe('miss');
    expect(cat(repo, 'cache/x86_64/os', '/opt/extra/data.txt')).toBe('extra 2\n');

    buildDeb(dir, 'tool', '1.0', { 'usr/bin/tool': '#!/bin/sh\necho 2\n' });
    const d = await again();
    expect(d.cache.state).toBe('miss');
    expect(cat(repo, 'cache/x86_64/os', '/usr/bin/tool')).toBe('#!/bin/sh\necho 2\n');

    fs.writeFileSync(m, TEXT.replace('version: "1"', 'version: "2"'));
    const e = await again();
    expect(e.cache.state).toBe('miss');
    expect(e.version).toBe('2');

    // A different SOURCE_DATE_EPOCH is a different input (the commit's timestamp).
    const f = await compose({ manifest: m, repo, env: { SOURCE_DATE_EPOCH: '1700000000' } });
    expect(f.cache.state).toBe('miss');
    expect((await compose({ manifest: m, repo, env: { SOURCE_DATE_EPOCH: '1700000000' } })).cache.state).toBe('hit');
  });

  it('a ref moved by someone else, or --no-cache, builds again', async () => {
    await compose({ manifest: m, repo, env: {} });
    const other = manifest(dir, 'ref: cache/other\nfiles:\n  - { path: /x, content: "x" }\n', 'other.yaml');
    const o = await compose({ manifest: other, repo, env: {} });
    writeRef(Repo.open(repo), 'cache/x86_64/os', o.commit);
    const back = await compose({ manifest: m, repo, env: {} });
    expect(back.cache.state).toBe('miss');
    expect(back.unchanged).toBe(false);
    expect(back.commit).not.toBe(o.commit);
    expect(head(repo, 'cache/x86_64/os')).toBe(back.commit);

    const before = snapshot(repo);
    const nocache = await compose({ manifest: m, repo, env: {}, noCache: true });
    expect(nocache.cache).toEqual({ state: 'off' });
    expect(nocache.unchanged).toBe(true); // found equal by comparing the built tree
    expect(nocache.commit).toBe(back.commit);
    expect(snapshot(repo)).toEqual(before);
  });

  it('debootstrap bases and packages fetched by name are never cached', async () => {
    const named = manifest(dir, 'ref: cache/named\nlayers:\n  - deb: [tool_1.0_all.deb, hello]\n', 'named.yaml');
    const r = Repo.open(repo);
    expect(await inputDigest(loadManifest(named, {}), r)).toEqual({ uncacheable: 'a deb layer fetches packages by name' });
    const boot = manifest(dir, 'ref: cache/boot\nbase:\n  debootstrap: { suite: bookworm }\n', 'boot.yaml');
    expect(await inputDigest(loadManifest(boot, {}), r)).toEqual({ uncacheable: 'the base is debootstrapped from a mirror' });
    const plain = await inputDigest(loadManifest(m, {}), r);
    expect(plain).toHaveProperty('digest');
    expect(await inputDigest(loadManifest(m, {}), r)).toEqual(plain);
  });
});
