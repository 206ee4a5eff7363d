// log and show: commits as people read them, newest first, with version,
// metadata, detached metadata and shallow history.

import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Checksum, objectPath, serializeVardict } from '../../src/core/objects.js';
import { isStrataError } from '../../src/errors.js';
import { commit } from '../../src/repo/commit.js';
import { describeCommit, log, plainValue, show } from '../../src/repo/history.js';
import { Repo } from '../../src/repo/repo.js';
import { tmpDir } from '../helpers/fixtures.js';

process.env.STRATA_WORKERS ??= '1';

const T0 = 1_704_067_200; // 2024-01-01T00:00:00Z

describe('log and show', () => {
  let repo: Repo;
  const chain: Checksum[] = [];

  beforeAll(async () => {
    const dir = tmpDir('strata-history-');
    const src = path.join(dir, 'src');
    fs.mkdirSync(src);
    repo = Repo.init(path.join(dir, 'repo'), 'bare-user').repo;
    for (let i = 0; i < 4; i++) {
      fs.writeFileSync(path.join(src, 'release'), `${i}\n`);
      const r = await commit({
        repo: repo.path, branch: 'os/stable', source: src, timestamp: T0 + i * 3600,
        subject: `Release 1.${i}`, body: i === 3 ? 'line one\nline two' : undefined,
        metadata: i % 2 === 0 ? [['version', `1.${i}`], ['build', `b${i}`]] : [],
        bindings: i !== 1,
      });
      chain.push(r.commit);
    }
  });

  it('log lists the history newest first, each with its parent', () => {
    const l = log({ repo: repo.path, rev: 'os/stable' });
    expect(l.map((c) => c.checksum)).toEqual([...chain].reverse());
    expect(l.map((c) => c.parent)).toEqual([chain[2], chain[1], chain[0], null]);
    expect(l.every((c, i) => c.parentPresent === (i < 3))).toBe(true);
    expect(l.map((c) => c.subject)).toEqual(['Release 1.3', 'Release 1.2', 'Release 1.1', 'Release 1.0']);
  });

  it('log --max stops early; log of REF^ starts at the parent', () => {
    expect(log({ repo: repo.path, rev: 'os/stable', max: 2 }).map((c) => c.checksum)).toEqual([chain[3], chain[2]]);
    expect(log({ repo: repo.path, rev: 'os/stable^^' }).map((c) => c.checksum)).toEqual([chain[1], chain[0]]);
  });

  it('show gives date, version, metadata and the ref binding', () => {
    const c = show({ repo: repo.path, rev: chain[2] });
    expect(c).toMatchObject({
      checksum: chain[2], subject: 'Release 1.2', body: '', timestamp: T0 + 7200, date: '2024-01-01T02:00:00Z', version: '1.2', parent: chain[1], parentPresent: true,
    });
    expect(c.metadata).toEqual({ version: '1.2', build: 'b2', 'ostree.ref-binding': ['os/stable'] });
    expect(c.detachedMetadata).toEqual({});
    expect(c.rootTree).toBe(repo.loadCommit(chain[2]).rootTree);
    expect(c.rootMeta).toBe(repo.loadCommit(chain[2]).rootMeta);
  });

  it('a commit without metadata has no version; the body keeps its lines', () => {
    expect(show({ repo: repo.path, rev: chain[1] })).toMatchObject({ version: null, metadata: {} });
    expect(show({ repo: repo.path, rev: 'os/stable' }).body).toBe('line one\nline two');
  });

  it('detached metadata (where signatures live) is shown by key', () => {
    const bytes = serializeVardict([
      ['ostree.sign.ed25519', { type: 'aay', value: [Buffer.from('sig'.repeat(21) + 's')] }],
      ['note', { type: 't', value: 42n }],
    ]);
    const file = path.join(repo.path, objectPath(chain[3], 'commitmeta', false));
    fs.writeFileSync(file, bytes);
    try {
      const c = show({ repo: repo.path, rev: 'os/stable' });
      expect(Object.keys(c.detachedMetadata).sort()).toEqual(['note', 'ostree.sign.ed25519']);
      expect(c.detachedMetadata.note).toBe('42');
      expect(c.detachedMetadata['ostree.sign.ed25519']).toEqual([Buffer.from('sig'.repeat(21) + 's').toString('hex')]);
    } finally {
      fs.rmSync(file);
    }
  });

  it('history ends quietly where a parent is not in the repository (shallow)', () => {
    const file = path.join(repo.path, objectPath(chain[1], 'commit', false));
    const saved = fs.readFileSync(file);
    fs.rmSync(file);
    try {
      const l = log({ repo: repo.path, rev: 'os/stable' });
      expect(l.map((c) => c.checksum)).toEqual([chain[3], chain[2]]);
      expect(l[1]).toMatchObject({ parent: chain[1], parentPresent: false });
      let code: string | undefined;
      try {
        show({ repo: repo.path, rev: 'os/stable^^' });
      } catch (err) {
        code = isStrataError(err) ? err.code : String(err);
      }
      expect(code).toBe('OBJECT_MISSING');
    } finally {
      fs.writeFileSync(file, saved);
    }
  });

  it('describeCommit and plainValue make GVariant values JSON-friendly', () => {
    expect(plainValue(12n)).toBe('12');
    expect(plainValue(Buffer.from([1, 255]))).toBe('01ff');
    expect(plainValue({ type: 'as', value: ['a', 'b'] })).toEqual(['a', 'b']);
    expect(plainValue([{ type: 's', value: 'x' }, 3n])).toEqual(['x', '3']);
    expect(JSON.parse(JSON.stringify(describeCommit(repo, chain[0]))).checksum).toBe(chain[0]);
  });
});
