// The summary file: refs and their metadata as ostree writes them, the
// additional metadata, delta indexes, signing, and the CLI.

import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Checksum } from '../../src/core/objects.js';
import { parseVardict } from '../../src/core/objects.js';
import { deltaIndexPath, staticDeltaDir } from '../../src/core/deltas.js';
import { commit } from '../../src/repo/commit.js';
import { writeRef } from '../../src/repo/refs.js';
import { Repo } from '../../src/repo/repo.js';
import { buildSummary, listStaticDeltas, parseSummary, serializeSummary, updateSummary, viewSummary } from '../../src/remote/summary.js';
import { generateKeyPair, parsePublicKey, parseSummarySig, signaturesIn, verifySignatures } from '../../src/remote/sign.js';
import { strata, tmpDir } from '../helpers/fixtures.js';
import { codeOf } from '../helpers/errors.js';

process.env.STRATA_WORKERS ??= '1';

const T1 = 1_700_000_000;
const be64 = (n: number): bigint => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b.readBigUInt64LE();
};

describe('summary of a repository', () => {
  let dir: string;
  let repoPath: string;
  const sums: Record<string, Checksum> = {};

  beforeAll(async () => {
    dir = tmpDir('strata-summary-');
    repoPath = path.join(dir, 'repo');
    Repo.init(repoPath, 'archive');
    fs.mkdirSync(path.join(dir, 'tree'));
    fs.writeFileSync(path.join(dir, 'tree/f'), 'x\n');
    for (const [branch, metadata] of [['zz/last', [['version', '2.0']]], ['aa', []], ['mm/x', [['other', 'y']]]] as [string, [string, string][]][]) {
      sums[branch] = (await commit({ repo: repoPath, branch, source: path.join(dir, 'tree'), timestamp: T1, metadata, subject: branch })).commit;
    }
    // A pulled ref: ostree leaves remote refs out of the summary.
    writeRef(Repo.open(repoPath), 'origin:os/stable', sums.aa);
  });

  it('lists heads sorted, each with the commit size, checksum, timestamp and version', () => {
    const repo = Repo.open(repoPath);
    const s = buildSummary(repo, { lastModified: T1 + 5 });
    expect(s.refs.map((r) => r.name)).toEqual(['aa', 'mm/x', 'zz/last']);
    for (const r of s.refs) {
      expect(r.checksum).toBe(sums[r.name]);
      expect(r.size).toBe(fs.statSync(repo.objectFile(r.checksum, 'commit')).size);
    }
    const last = s.refs[2].metadata;
    // GLib's order, as ostree writes it: version first.
    expect(last).toEqual([
      ['ostree.commit.version', { type: 's', value: '2.0' }],
      ['ostree.commit.timestamp', { type: 't', value: be64(T1) }],
    ]);
    expect(s.refs[1].metadata).toEqual([['ostree.commit.timestamp', { type: 't', value: be64(T1) }]]);
    expect(s.metadata.map(([k]) => k)).toEqual(['ostree.summary.mode', 'ostree.summary.last-modified', 'ostree.summary.tombstone-commits', 'ostree.summary.indexed-deltas']);
    const view = viewSummary(parseSummary(serializeSummary(s)));
    expect(view).toMatchObject({ lastModified: T1 + 5, mode: 'archive-z2', tombstoneCommits: false, indexedDeltas: true, staticDeltas: {}, other: {} });
    expect(view.refs[2]).toEqual({ name: 'zz/last', checksum: sums['zz/last'], size: s.refs[2].size, timestamp: T1, version: '2.0' });
  });

  it('round-trips through its bytes', () => {
    const s = buildSummary(Repo.open(repoPath), { lastModified: 42 });
    expect(parseSummary(serializeSummary(s))).toEqual(s);
  });

  it('lists static deltas with the SHA-256 of their superblock', () => {
    const repo = Repo.open(repoPath);
    const d = path.join(repoPath, staticDeltaDir({ from: sums.aa, to: sums['zz/last'] }));
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, 'superblock'), 'not really a superblock');
    // A directory without a superblock is not a delta (ostree skips it too).
    fs.mkdirSync(path.join(repoPath, staticDeltaDir({ from: null, to: sums.aa })), { recursive: true });
    try {
      const deltas = listStaticDeltas(repo);
      expect(deltas.map((x) => x.name)).toEqual([`${sums.aa}-${sums['zz/last']}`]);
      const digest = createHash('sha256').update('not really a superblock').digest('hex');
      expect(deltas[0].digest.toString('hex')).toBe(digest);
      const view = viewSummary(buildSummary(repo, { lastModified: 1 }));
      expect(view.staticDeltas).toEqual({ [`${sums.aa}-${sums['zz/last']}`]: digest });
    } finally {
      fs.rmSync(path.join(repoPath, 'deltas'), { recursive: true, force: true });
    }
  });

  it('updates atomically: summary written, stale summary.sig gone, delta indexes and indexed-deltas recorded', () => {
    const d = path.join(repoPath, staticDeltaDir({ from: null, to: sums.aa }));
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, 'superblock'), 'sb');
    const stale = path.join(repoPath, deltaIndexPath(sums['mm/x']));
    fs.mkdirSync(path.dirname(stale), { recursive: true });
    fs.writeFileSync(stale, 'stale index');
    fs.writeFileSync(path.join(repoPath, 'summary.sig'), 'old signature');
    fs.appendFileSync(path.join(repoPath, 'config'), '\n[x-keep]\nthis=stays\n');
    try {
      const r = updateSummary({ repo: repoPath, lastModified: T1 });
      expect(r).toMatchObject({ refs: 3, deltas: 1, signed: false, lastModified: T1 });
      const bytes = fs.readFileSync(path.join(repoPath, 'summary'));
      expect(bytes).toEqual(serializeSummary(buildSummary(Repo.open(repoPath), { lastModified: T1 })));
      expect(fs.existsSync(path.join(repoPath, 'summary.sig'))).toBe(false);
      const index = parseVardict(fs.readFileSync(path.join(repoPath, deltaIndexPath(sums.aa))));
      expect(index[0][0]).toBe('ostree.static-deltas');
      expect(fs.existsSync(stale)).toBe(false);
      const config = fs.readFileSync(path.join(repoPath, 'config'), 'utf8');
      expect(config).toMatch(/^\[core\]\nrepo_version=1\nmode=archive-z2\nindexed-deltas=true\n/);
      expect(config).toMatch(/\[x-keep\]\nthis=stays\n$/);
      expect(fs.readdirSync(path.join(repoPath, 'tmp')).filter((n) => n.includes('.tmp-'))).toEqual([]);
    } finally {
      fs.rmSync(path.join(repoPath, 'deltas'), { recursive: true, force: true });
    }
  });

  it('signs the summary into summary.sig with every key given', () => {
    const keys = [generateKeyPair(), generateKeyPair()];
    const keyFile = path.join(dir, 'summary-keys');
    fs.writeFileSync(keyFile, keys.map((k) => k.secretKey).join('\n') + '\n');
    const r = updateSummary({ repo: repoPath, signKeyFile: keyFile });
    expect(r.signed).toBe(true);
    const bytes = fs.readFileSync(path.join(repoPath, 'summary'));
    const sigs = signaturesIn(parseSummarySig(fs.readFileSync(path.join(repoPath, 'summary.sig'))), 'summary.sig');
    expect(sigs).toHaveLength(2);
    for (const k of keys) expect(verifySignatures(bytes, sigs, [parsePublicKey(k.publicKey)], 'summary').key).toBe(k.publicKey);
    // A bad key fails before anything changes.
    fs.writeFileSync(path.join(dir, 'bad-key'), 'nope\n');
    const sigBefore = fs.readFileSync(path.join(repoPath, 'summary.sig'));
    expect(codeOf(() => updateSummary({ repo: repoPath, signKeyFile: path.join(dir, 'bad-key') }))).toBe('KEY_INVALID');
    expect(fs.readFileSync(path.join(repoPath, 'summary'))).toEqual(bytes);
    expect(fs.readFileSync(path.join(repoPath, 'summary.sig'))).toEqual(sigBefore);
  });

  it('refuses malformed summaries and a missing commit', () => {
    expect(codeOf(() => parseSummary(Buffer.from('garbage')))).toBe('SUMMARY_MALFORMED');
    expect(codeOf(() => parseSummarySig(Buffer.from([1, 2, 3])))).toBe('SUMMARY_MALFORMED');
    const other = path.join(tmpDir('strata-summary-missing-'), 'repo');
    Repo.init(other, 'archive');
    writeRef(Repo.open(other), 'dangling', 'ab'.repeat(32) as Checksum);
    expect(codeOf(() => updateSummary({ repo: other }))).toBe('OBJECT_MISSING');
    expect(fs.existsSync(path.join(other, 'summary'))).toBe(false);
  });
});

describe('strata summary', () => {
  it('-u then --view, in text and JSON; bad flags are usage errors', () => {
    const dir = tmpDir('strata-summary-cli-');
    const repo = path.join(dir, 'repo');
    fs.mkdirSync(path.join(dir, 'tree'));
    fs.writeFileSync(path.join(dir, 'tree/f'), 'x');
    expect(strata(['init', '--repo', repo]).status).toBe(0);
    expect(strata(['summary', '--view', '--repo', repo]).status).toBe(66);
    expect(strata(['commit', '--repo', repo, '-b', 'os/stable', '--add-metadata-string', 'version=7', path.join(dir, 'tree')]).status).toBe(0);
    expect(strata(['keygen', '--output', path.join(dir, 'k')]).status).toBe(0);
    const u = strata(['summary', '-u', '--repo', repo, '--sign-key', path.join(dir, 'k'), '--json']);
    expect(u.status, u.stderr).toBe(0);
    expect(u.json()).toMatchObject({ refs: 1, signed: true });
    const v = strata(['summary', '--view', '--repo', repo, '--json']);
    expect(v.json()).toMatchObject({ signed: true, mode: 'archive-z2', refs: [{ name: 'os/stable', version: '7' }] });
    const text = strata(['summary', '--view', '--repo', repo]);
    expect(text.stdout).toMatch(/^\* os\/stable\n {4}Latest Commit \(\d+ bytes\): [0-9a-f]{64}\n {4}Version: 7\n/);
    expect(strata(['summary', '--repo', repo]).status).toBe(2);
    expect(strata(['summary', '-u', '--view', '--repo', repo]).status).toBe(2);
    expect(strata(['summary', '--view', '--sign-key', path.join(dir, 'k'), '--repo', repo]).status).toBe(2);
  });
});
