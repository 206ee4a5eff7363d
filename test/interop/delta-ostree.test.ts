// Static deltas in OSTree's format, against the real thing: strata makes a
// delta from nothing and FROM→TO, applies them into archive and bare-user
// repositories (same commit, same objects, fsck clean), refuses corrupted
// parts and wrong objects without storing anything, lists the delta in the
// summary that `ostree summary --view` reads, and Debian's `ostree pull`
// fetches and applies our delta from `strata serve`. strata also applies a
// delta libostree made (real bsdiff patches and fallback objects).

import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeTree, ostree, startStrataServe, strata, tmpDir } from '../helpers/fixtures.js';
import { codeOfAsync } from '../helpers/errors.js';
import { Repo } from '../../src/repo/repo.js';
import { type ObjectKey, markTrees } from '../../src/repo/reachable.js';
import { listObjects } from '../../src/repo/reachable.js';
import { type Checksum } from '../../src/core/objects.js';
import { staticDeltaDir } from '../../src/core/deltas.js';
import { PART_INDEX_KEY, parsePartPayload, parseSuperblock, serializePartIndex, serializePartPayload, serializeSuperblock } from '../../src/core/delta-format.js';
import { generateDelta } from '../../src/remote/delta-generate.js';
import { applyDelta, localFetch } from '../../src/remote/delta-apply.js';
import { offeredDelta } from '../../src/core/deltas.js';

const hasOstree = spawnSync('ostree', ['--version']).status === 0;

function ok(r: { status: number | null; stderr: string; stdout: string }, what: string): string {
  if (r.status !== 0) throw new Error(`${what} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}


function reachable(repoPath: string, commit: Checksum): Set<ObjectKey> {
  const set = new Set<ObjectKey>();
  markTrees(Repo.open(repoPath), [commit], set);
  set.delete(`${commit}.commitmeta`);
  return set;
}

function missingIn(repoPath: string, keys: Set<ObjectKey>): string[] {
  const repo = Repo.open(repoPath);
  return [...keys].filter((k) => {
    const [c, t] = k.split('.');
    return !repo.hasObject(c as Checksum, t as 'file');
  });
}

const objectCount = (repoPath: string): number => listObjects(Repo.open(repoPath)).length;

/** Tree B: tree A with a new file, a removed one, and a changed large file (a binary-patch candidate). */
function makeTreeB(root: string): string {
  makeTree(root, 0);
  const big = path.join(root, 'usr/share/big.bin');
  const bytes = fs.readFileSync(big);
  for (let i = 1000; i < bytes.length; i += 40_000) bytes[i] ^= 0x5a;
  fs.writeFileSync(big, Buffer.concat([Buffer.from('new header\n'), bytes]));
  fs.writeFileSync(path.join(root, 'usr/share/added.txt'), 'a file only in B\n'.repeat(100));
  fs.rmSync(path.join(root, 'usr/share/odd-perms'));
  // New and incompressible: libostree sends files over 1 MB like this as fallback objects.
  const noise = Buffer.alloc(1_200_000);
  let x = 7;
  for (let i = 0; i < noise.length; i++) noise[i] = (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24;
  fs.writeFileSync(path.join(root, 'usr/share/noise.bin'), noise);
  return root;
}


describe('static deltas', () => {
  let work: string;
  let server: string;
  let A: Checksum;
  let B: Checksum;

  beforeAll(() => {
    work = tmpDir('strata-delta-');
    server = path.join(work, 'server');
    ok(strata(['init', '--repo', server, '--mode', 'archive']), 'init');
    A = strata(['commit', '--repo', server, '-b', 'os', '--timestamp', '1700000000', '--json', makeTree(path.join(work, 'a'), 0)]).json<{ commit: Checksum }>().commit;
    B = strata(['commit', '--repo', server, '-b', 'os', '--timestamp', '1700000100', '--json', makeTreeB(path.join(work, 'b'))]).json<{ commit: Checksum }>().commit;
  });

  it('generates from nothing and from A, with the changed file as a binary patch', async () => {
    const empty = await generateDelta({ repo: server, from: null, to: A });
    expect(empty.patched).toBe(0);
    expect(fs.existsSync(path.join(server, staticDeltaDir({ from: null, to: A }), 'superblock'))).toBe(true);
    const r = strata(['static-delta', 'generate', '--repo', server, '--from', A, '--to', 'os', '--json']);
    const ab = JSON.parse(ok(r, 'static-delta generate')) as { patched: number; objects: number; size: number };
    expect(ab.patched).toBe(1);
    const list = strata(['static-delta', 'list', '--repo', server, '--json']).json<{ name: string }[]>();
    expect(list.map((d) => d.name).sort()).toEqual([A, `${A}-${B}`].sort());
    const show = strata(['static-delta', 'show', '--repo', server, `${A}-${B}`, '--json']).json<{ parts: unknown[]; to: string }>();
    expect(show.to).toBe(B);
    expect(show.parts.length).toBeGreaterThan(0);
  });

  const applyCases = [['archive', 'xz', 'workers'], ['archive', '7zz', 'inline'], ['bare-user', 'xz', 'inline'], ['bare-user', '7zz', 'workers']] as const;
  for (const [mode, decompressor, staging] of applyCases) {
    it(`applies nothing→A then A→B into a ${mode} repository, parts read by ${decompressor}, objects staged ${staging === 'inline' ? 'on the main thread' : 'by workers'}: same commit, same objects, fsck clean`, async () => {
      const target = path.join(work, `client-${mode}-${decompressor}-${staging}`);
      ok(strata(['init', '--repo', target, '--mode', mode]), 'init');
      const first = await applyDelta({ repo: target, fetch: localFetch(server), from: null, to: A, decompressor, staging });
      expect(first.commit).toBe(A);
      expect(missingIn(target, reachable(server, A))).toEqual([]);
      const second = await applyDelta({ repo: target, fetch: localFetch(server), from: A, to: B, decompressor, staging });
      expect(second.objectsWritten).toBeGreaterThan(0);
      const wanted = reachable(server, B);
      expect(missingIn(target, wanted)).toEqual([]);
      expect(reachable(target, B)).toEqual(wanted);
      ok(strata(['fsck', '--repo', target]), 'fsck');
      if (hasOstree) ok(ostree(['fsck', `--repo=${target}`]), 'ostree fsck');
      expect(fs.readdirSync(path.join(target, 'tmp')).filter((n) => n.startsWith('staging-'))).toEqual([]);
    });
  }

  it('refuses a corrupted part, a wrong superblock digest and a missing FROM, storing nothing', async () => {
    const remote = path.join(work, 'remote-corrupt');
    fs.cpSync(server, remote, { recursive: true });
    const part0 = path.join(remote, staticDeltaDir({ from: A, to: B }), '0');
    const bytes = fs.readFileSync(part0);
    bytes[Math.floor(bytes.length / 2)] ^= 1;
    fs.writeFileSync(part0, bytes);
    const target = path.join(work, 'client-corrupt');
    ok(strata(['init', '--repo', target, '--mode', 'bare-user']), 'init');
    expect(await codeOfAsync(applyDelta({ repo: target, fetch: localFetch(remote), from: A, to: B }))).toBe('OBJECT_MISSING');
    await applyDelta({ repo: target, fetch: localFetch(server), from: null, to: A });
    const before = objectCount(target);
    expect(await codeOfAsync(applyDelta({ repo: target, fetch: localFetch(remote), from: A, to: B }))).toBe('DELTA_CORRUPT');
    expect(await codeOfAsync(applyDelta({ repo: target, fetch: localFetch(server), from: A, to: B, superblockDigest: '00'.repeat(32) }))).toBe('DELTA_CORRUPT');
    expect(objectCount(target)).toBe(before);
    expect(Repo.open(target).hasObject(B, 'commit')).toBe(false);
  });

  it('refuses a part whose checksum matches but which makes a different object', async () => {
    const remote = path.join(work, 'remote-forged');
    fs.cpSync(server, remote, { recursive: true });
    const dir = path.join(remote, staticDeltaDir({ from: A, to: B }));
    const sb = parseSuperblock(fs.readFileSync(path.join(dir, 'superblock')));
    const raw = spawnSync('xz', ['-dc'], { input: fs.readFileSync(path.join(dir, '0')).subarray(1), maxBuffer: 1 << 30 }).stdout;
    expect(raw.length).toBeGreaterThan(1_000_000); // the whole part, not spawnSync's default 1 MiB of it
    const payload = parsePartPayload(raw);
    payload.data[payload.data.length - 1] ^= 0xff; // the last object's last byte
    const xz = spawnSync('xz', ['-zc'], { input: serializePartPayload(payload), maxBuffer: 1 << 30 }).stdout;
    const forged = Buffer.concat([Buffer.from('x'), xz]);
    fs.writeFileSync(path.join(dir, '0'), forged);
    sb.parts[0] = { ...sb.parts[0], size: forged.length, checksum: createHash('sha256').update(forged).digest('hex') as Checksum };
    fs.writeFileSync(path.join(dir, 'superblock'), serializeSuperblock(sb));
    const target = path.join(work, 'client-forged');
    ok(strata(['init', '--repo', target, '--mode', 'archive']), 'init');
    await applyDelta({ repo: target, fetch: localFetch(server), from: null, to: A });
    const before = objectCount(target);
    expect(await codeOfAsync(applyDelta({ repo: target, fetch: localFetch(remote), from: A, to: B }))).toBe('DELTA_CORRUPT');
    expect(await codeOfAsync(applyDelta({ repo: target, fetch: localFetch(remote), from: A, to: B, staging: 'workers' }))).toBe('DELTA_CORRUPT');
    expect(await codeOfAsync(applyDelta({ repo: target, fetch: localFetch(remote), from: A, to: B, staging: 'inline' }))).toBe('DELTA_CORRUPT');
    expect(objectCount(target)).toBe(before);
  });

  it.each(['xz', '7zz'] as const)('refuses a part whose checksum matches but whose xz stream is broken (read by %s)', async (decompressor) => {
    const remote = path.join(work, `remote-broken-${decompressor}`);
    fs.cpSync(server, remote, { recursive: true });
    const dir = path.join(remote, staticDeltaDir({ from: A, to: B }));
    const sb = parseSuperblock(fs.readFileSync(path.join(dir, 'superblock')));
    const part = fs.readFileSync(path.join(dir, '0'));
    const broken = part.subarray(0, Math.floor(part.length / 2)); // an xz stream cut in half
    fs.writeFileSync(path.join(dir, '0'), broken);
    sb.parts[0] = { ...sb.parts[0], size: broken.length, checksum: createHash('sha256').update(broken).digest('hex') as Checksum };
    fs.writeFileSync(path.join(dir, 'superblock'), serializeSuperblock(sb));
    const target = path.join(work, `client-broken-${decompressor}`);
    ok(strata(['init', '--repo', target, '--mode', 'bare-user']), 'init');
    await applyDelta({ repo: target, fetch: localFetch(server), from: null, to: A, decompressor });
    const before = objectCount(target);
    const err = await applyDelta({ repo: target, fetch: localFetch(remote), from: A, to: B, decompressor }).then(() => null, (e: unknown) => e as { code?: string; message: string });
    expect(err?.code).toBe('DELTA_CORRUPT');
    expect(err?.message).toMatch(/not valid xz data|past the end of its part/);
    expect(objectCount(target)).toBe(before);
    expect(Repo.open(target).hasObject(B, 'commit')).toBe(false);
  });

  it('applies parts while they decompress from the part index, and refuses an index that disagrees with its parts', async () => {
    const dir = staticDeltaDir({ from: A, to: B });
    const sb = parseSuperblock(fs.readFileSync(path.join(server, dir, 'superblock')));
    const entry = sb.metadata.find(([k]) => k === PART_INDEX_KEY);
    expect(entry?.[1].type).toBe('aay');
    const index = entry![1].value as Buffer[];
    expect(index.length).toBe(sb.parts.length);
    const payload = parsePartPayload(spawnSync('xz', ['-dc'], { input: fs.readFileSync(path.join(server, dir, '0')).subarray(1), maxBuffer: 1 << 30 }).stdout);
    expect(payload.data.length).toBeGreaterThan(1_000_000);
    expect(index[0].equals(serializePartIndex(payload))).toBe(true);

    const forge = (name: string, value: Buffer[]): string => {
      const remote = path.join(work, name);
      fs.cpSync(server, remote, { recursive: true });
      const metadata = sb.metadata.map(([k, v]) => (k === PART_INDEX_KEY ? [k, { type: 'aay', value }] : [k, v])) as typeof sb.metadata;
      fs.writeFileSync(path.join(remote, dir, 'superblock'), serializeSuperblock({ ...sb, metadata }));
      return remote;
    };
    const ops = Buffer.from(payload.ops);
    ops[ops.length - 1] ^= 0xff;
    const cases = {
      'index-short-data': [serializePartIndex({ ...payload, data: payload.data.subarray(1) }), ...index.slice(1)],
      'index-other-ops': [serializePartIndex({ ...payload, ops }), ...index.slice(1)],
      'index-missing-entry': index.slice(1),
    };
    for (const [name, value] of Object.entries(cases)) {
      const target = path.join(work, `client-${name}`);
      ok(strata(['init', '--repo', target, '--mode', 'bare-user']), 'init');
      await applyDelta({ repo: target, fetch: localFetch(server), from: null, to: A });
      const before = objectCount(target);
      // A flipped last operation byte no longer parses: DELTA_MALFORMED; the others are DELTA_CORRUPT.
      expect(await codeOfAsync(applyDelta({ repo: target, fetch: localFetch(forge(`remote-${name}`, value)), from: A, to: B })), name).toBe(name === 'index-other-ops' ? 'DELTA_MALFORMED' : 'DELTA_CORRUPT');
      expect(objectCount(target), name).toBe(before);
      expect(Repo.open(target).hasObject(B, 'commit')).toBe(false);
    }
  });

  it.skipIf(!hasOstree)('summary -u lists the delta and ostree summary --view reads it', () => {
    ok(strata(['summary', '-u', '--repo', server]), 'summary -u');
    const view = ok(ostree(['summary', '--view', `--repo=${server}`]), 'ostree summary --view');
    expect(view).toContain(`${A}-${B}`);
    const summaryView = strata(['summary', '--view', '--repo', server, '--json']).json<{ staticDeltas: Record<string, string> }>();
    const digest = offeredDelta(summaryView, A, B);
    expect(digest).toBe(createHash('sha256').update(fs.readFileSync(path.join(server, staticDeltaDir({ from: A, to: B }), 'superblock'))).digest('hex'));
    expect(offeredDelta(summaryView, B, A)).toBeUndefined();
  });

  it.skipIf(!hasOstree).each(['xz', '7zz'])('ostree pull --require-static-deltas fetches and applies our delta (parts by %s) from strata serve', async (compressor) => {
    const made = strata(['static-delta', 'generate', '--repo', server, '--from', A, '--to', 'os', '--compressor', compressor, '--json']).json<{ compressor: string }>();
    expect(made.compressor).toBe(compressor);
    ok(strata(['summary', '-u', '--repo', server]), 'summary -u');
    const client = path.join(work, `ostree-client-${compressor}`);
    ok(ostree(['init', `--repo=${client}`, '--mode=bare-user']), 'ostree init');
    ok(ostree(['pull-local', `--repo=${client}`, server, A]), 'pull-local A');
    const s = await startStrataServe(server);
    try {
      ok(ostree(['remote', 'add', `--repo=${client}`, '--no-gpg-verify', 'origin', s.url]), 'remote add');
      const pull = spawnSync('ostree', ['pull', `--repo=${client}`, '--require-static-deltas', 'origin', 'os'], { encoding: 'utf8' });
      ok(pull, 'ostree pull');
    } finally {
      await new Promise((resolve) => {
        s.child.on('exit', resolve);
        s.child.kill('SIGTERM');
      });
    }
    const dir = staticDeltaDir({ from: A, to: B });
    expect(s.log()).toContain(`GET /${dir}/superblock 200`);
    expect(s.log()).toContain(`GET /${dir}/0 200`);
    expect(ok(ostree(['rev-parse', `--repo=${client}`, 'origin:os']), 'rev-parse').trim()).toBe(B);
    ok(ostree(['fsck', `--repo=${client}`]), 'ostree fsck');
  });

  it.skipIf(!hasOstree)("applies a delta libostree made (bsdiff patches, fallback objects)", async () => {
    const orepo = path.join(work, 'ostree-made');
    ok(ostree(['init', `--repo=${orepo}`, '--mode=archive']), 'ostree init');
    ok(ostree(['pull-local', `--repo=${orepo}`, server, 'os', '--depth=1']), 'pull-local');
    ok(ostree(['static-delta', 'generate', `--repo=${orepo}`, '--from', A, '--to', B, '--min-fallback-size=1']), 'ostree static-delta generate');
    const sb = parseSuperblock(fs.readFileSync(path.join(orepo, staticDeltaDir({ from: A, to: B }), 'superblock')));
    expect(sb.fallbacks.length).toBeGreaterThan(0);
    for (const mode of ['archive', 'bare-user'] as const) {
      const target = path.join(work, `from-ostree-${mode}`);
      ok(strata(['init', '--repo', target, '--mode', mode]), 'init');
      await applyDelta({ repo: target, fetch: localFetch(server), from: null, to: A });
      // No part index in libostree's deltas: whole parts, objects staged by workers (auto) or here.
      await applyDelta({ repo: target, fetch: localFetch(orepo), from: A, to: B, staging: mode === 'archive' ? 'inline' : 'auto' });
      expect(missingIn(target, reachable(server, B))).toEqual([]);
      ok(strata(['fsck', '--repo', target]), 'fsck');
    }
  });

});
