// Transaction.commit: adopted objects waiting in objects/'s layout (a pull's
// staging area) go into a repository that lacks their `objects/XX` with one
// rename of the directory; every other case renames object by object, and
// the result is the same set of objects either way.

import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Checksum, ObjectType } from '../../src/core/objects.js';
import { Repo } from '../../src/repo/repo.js';
import { Transaction } from '../../src/repo/transaction.js';
import { tmpDir } from '../helpers/fixtures.js';

/** Metadata-typed bytes whose sha256 starts with `prefix` (the transaction moves bytes; it does not parse them). */
function objectWithPrefix(prefix: string, salt: string): { checksum: Checksum; bytes: Buffer } {
  for (let i = 0; ; i++) {
    const bytes = Buffer.from(`${salt}-${i}`);
    const checksum = createHash('sha256').update(bytes).digest('hex') as Checksum;
    if (checksum.startsWith(prefix)) return { checksum, bytes };
  }
}

/** Writes `objs` into `area/XX/REST.dirmeta`, as a pull stages them. */
function stage(area: string, objs: { checksum: Checksum; bytes: Buffer }[]): string[] {
  return objs.map(({ checksum, bytes }) => {
    const file = path.join(area, checksum.slice(0, 2), `${checksum.slice(2)}.dirmeta`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, bytes);
    return file;
  });
}

function adoptAll(txn: Transaction, objs: { checksum: Checksum }[], files: string[], type: ObjectType = 'dirmeta'): void {
  objs.forEach((o, i) => expect(txn.adopt(o.checksum, type, files[i])).toBe(true));
}

describe('Transaction.commit with adopted objects', () => {
  let dir: string;
  let repo: Repo;
  let area: string;
  beforeEach(() => {
    dir = tmpDir('strata-txn-');
    repo = Repo.init(path.join(dir, 'repo'), 'bare-user').repo;
    area = path.join(repo.path, 'tmp', 'area');
  });

  it('moves a whole XX directory into a repository that lacks objects/XX', () => {
    const objs = [objectWithPrefix('ab', 'one'), objectWithPrefix('ab', 'two'), objectWithPrefix('cd', 'three')];
    const files = stage(area, objs);
    const inode = fs.statSync(path.join(area, 'ab')).ino;
    const txn = Transaction.begin(repo);
    adoptAll(txn, objs, files);
    txn.commit();
    for (const o of objs) expect(fs.readFileSync(repo.objectFile(o.checksum, 'dirmeta'))).toEqual(o.bytes);
    // The same directory, renamed: not a new one filled object by object.
    expect(fs.statSync(repo.objectDir(objs[0].checksum)).ino).toBe(inode);
    expect(fs.existsSync(path.join(area, 'ab'))).toBe(false);
    expect(fs.existsSync(path.join(area, 'cd'))).toBe(false);
  });

  it('renames object by object into an objects/XX that exists, keeping what it held', () => {
    const old = objectWithPrefix('ab', 'old');
    const first = Transaction.begin(repo);
    first.adopt(old.checksum, 'dirmeta', stage(area, [old])[0]);
    first.commit();
    const objs = [objectWithPrefix('ab', 'new1'), objectWithPrefix('ab', 'new2')];
    const files = stage(area, objs);
    const inode = fs.statSync(repo.objectDir(old.checksum)).ino;
    const txn = Transaction.begin(repo);
    adoptAll(txn, objs, files);
    txn.commit();
    for (const o of [old, ...objs]) expect(fs.readFileSync(repo.objectFile(o.checksum, 'dirmeta'))).toEqual(o.bytes);
    expect(fs.statSync(repo.objectDir(old.checksum)).ino).toBe(inode);
  });

  it('leaves behind what the directory holds beyond the adopted objects', () => {
    const objs = [objectWithPrefix('ef', 'kept')];
    const files = stage(area, objs);
    const stray = path.join(area, 'ef', `${'0'.repeat(62)}.dirmeta`);
    fs.writeFileSync(stray, 'not adopted');
    const txn = Transaction.begin(repo);
    adoptAll(txn, objs, files);
    txn.commit();
    expect(fs.readFileSync(repo.objectFile(objs[0].checksum, 'dirmeta'))).toEqual(objs[0].bytes);
    expect(fs.readdirSync(repo.objectDir(objs[0].checksum))).toEqual([`${objs[0].checksum.slice(2)}.dirmeta`]);
    expect(fs.existsSync(stray)).toBe(true);
  });

  it('renames sources outside the XX layout one by one, and a commit after the rest', () => {
    const flat = objectWithPrefix('12', 'flat');
    const file = path.join(area, `${flat.checksum}.dirmeta`);
    fs.mkdirSync(area, { recursive: true });
    fs.writeFileSync(file, flat.bytes);
    const c = objectWithPrefix('12', 'commit');
    const inXX = stage(path.join(dir, 'other'), [c])[0].replace(/\.dirmeta$/, '.commit');
    fs.renameSync(inXX.replace(/\.commit$/, '.dirmeta'), inXX);
    const txn = Transaction.begin(repo);
    txn.adopt(flat.checksum, 'dirmeta', file);
    // A commit waiting in an XX directory still goes by itself, last.
    txn.adopt(c.checksum, 'commit', inXX);
    txn.commit();
    expect(fs.readFileSync(repo.objectFile(flat.checksum, 'dirmeta'))).toEqual(flat.bytes);
    expect(fs.readFileSync(repo.objectFile(c.checksum, 'commit'))).toEqual(c.bytes);
    expect(fs.existsSync(path.dirname(inXX))).toBe(true);
  });

  it('keeps the objects/XX directories of a repository that has them empty', () => {
    const objs = [objectWithPrefix('77', 'a')];
    fs.mkdirSync(repo.objectDir(objs[0].checksum));
    const inode = fs.statSync(repo.objectDir(objs[0].checksum)).ino;
    const files = stage(area, objs);
    const txn = Transaction.begin(repo);
    adoptAll(txn, objs, files);
    txn.commit();
    expect(fs.readFileSync(repo.objectFile(objs[0].checksum, 'dirmeta'))).toEqual(objs[0].bytes);
    expect(fs.statSync(repo.objectDir(objs[0].checksum)).ino).toBe(inode);
  });
});
