// ed25519 signing in OSTree's encodings: keys, commit signatures in the
// detached metadata, verification, and the CLI around them.

import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Checksum } from '../../src/core/objects.js';
import { parseVardict } from '../../src/core/objects.js';
import { commit } from '../../src/repo/commit.js';
import { Repo } from '../../src/repo/repo.js';
import {
  ED25519_KEY, generateKeyPair, loadPublicKeys, loadSecretKeys, parsePublicKey, parseSecretKey, resolvePublicKeys, signCommit, signData,
  verifyCommit, verifySignatures, writeCommitMeta,
} from '../../src/remote/sign.js';
import { makeTree, strata, tmpDir } from '../helpers/fixtures.js';
import { codeOf } from '../helpers/errors.js';

process.env.STRATA_WORKERS ??= '1';

// RFC 8032, section 7.1, test 1: seed, public key, empty message, signature.
const RFC_SEED = '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60';
const RFC_PUBLIC = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
const RFC_SIG = 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b';
const rfcSecret = Buffer.from(RFC_SEED + RFC_PUBLIC, 'hex').toString('base64');
const rfcPublic = Buffer.from(RFC_PUBLIC, 'hex').toString('base64');

describe('keys in OSTree encoding', () => {
  it('reads a libsodium secret key (seed then public key) and signs as RFC 8032 says', () => {
    const sk = parseSecretKey(rfcSecret);
    expect(sk.public.toString('hex')).toBe(RFC_PUBLIC);
    expect(signData(Buffer.alloc(0), sk).toString('hex')).toBe(RFC_SIG);
    const pk = parsePublicKey(rfcPublic);
    expect(verifySignatures(Buffer.alloc(0), [Buffer.from(RFC_SIG, 'hex')], [pk], 'the test vector').key).toBe(rfcPublic);
  });

  it('generates pairs whose halves agree', () => {
    const pair = generateKeyPair();
    expect(Buffer.from(pair.secretKey, 'base64')).toHaveLength(64);
    expect(Buffer.from(pair.publicKey, 'base64')).toHaveLength(32);
    expect(parseSecretKey(pair.secretKey).public.toString('base64')).toBe(pair.publicKey);
    expect(generateKeyPair().publicKey).not.toBe(pair.publicKey);
  });

  it('refuses a secret key whose public half is not its seed\'s', () => {
    const other = Buffer.from(generateKeyPair().publicKey, 'base64');
    const bad = Buffer.concat([Buffer.from(RFC_SEED, 'hex'), other]).toString('base64');
    expect(codeOf(() => parseSecretKey(bad))).toBe('KEY_INVALID');
  });

  it.each([
    ['a public key as secret key', () => parseSecretKey(rfcPublic)],
    ['a secret key as public key', () => parsePublicKey(rfcSecret)],
    ['not base64', () => parsePublicKey('not*base64!')],
    ['base64 with junk', () => parsePublicKey(rfcPublic + 'x')],
    ['a short key', () => parsePublicKey('AAAA')],
    ['empty', () => parseSecretKey('')],
  ])('refuses %s with KEY_INVALID', (_what, fn) => {
    expect(codeOf(fn)).toBe('KEY_INVALID');
  });

  it('reads key files of one key per line, and tells a file from an inline key', () => {
    const dir = tmpDir('strata-keys-');
    const a = generateKeyPair();
    const b = generateKeyPair();
    fs.writeFileSync(path.join(dir, 'two.pub'), `${a.publicKey}\n\n${b.publicKey}\n`);
    fs.writeFileSync(path.join(dir, 'sec'), `${a.secretKey}\n`);
    fs.writeFileSync(path.join(dir, 'empty'), '\n');
    expect(loadPublicKeys(path.join(dir, 'two.pub')).map((k) => k.public.toString('base64'))).toEqual([a.publicKey, b.publicKey]);
    expect(loadSecretKeys(path.join(dir, 'sec'))[0].public.toString('base64')).toBe(a.publicKey);
    expect(resolvePublicKeys(path.join(dir, 'two.pub'))).toHaveLength(2);
    expect(resolvePublicKeys(a.publicKey)[0].public.toString('base64')).toBe(a.publicKey);
    expect(codeOf(() => loadPublicKeys(path.join(dir, 'empty')))).toBe('KEY_INVALID');
    expect(codeOf(() => loadPublicKeys(path.join(dir, 'missing')))).toBe('KEY_INVALID');
    expect(codeOf(() => loadPublicKeys(dir))).toBe('KEY_INVALID');
    expect(codeOf(() => resolvePublicKeys(path.join(dir, 'no/such/file')))).toBe('KEY_INVALID');
    expect(codeOf(() => loadPublicKeys(path.join(dir, 'sec')))).toBe('KEY_INVALID');
  });
});

describe('commit signatures', () => {
  let repoPath: string;
  let keyDir: string;
  let sum: Checksum;
  const pairs = [generateKeyPair(), generateKeyPair(), generateKeyPair()];
  const keyFile = (i: number): string => path.join(keyDir, `k${i}`);
  const pub = (i: number) => [parsePublicKey(pairs[i].publicKey)];

  beforeAll(async () => {
    const dir = tmpDir('strata-sign-');
    repoPath = path.join(dir, 'repo');
    keyDir = path.join(dir, 'keys');
    fs.mkdirSync(keyDir);
    pairs.forEach((p, i) => fs.writeFileSync(keyFile(i), p.secretKey + '\n'));
    fs.writeFileSync(path.join(keyDir, 'both'), `${pairs[1].secretKey}\n${pairs[2].secretKey}\n`);
    Repo.init(repoPath, 'archive');
    fs.mkdirSync(path.join(dir, 'tree'));
    fs.writeFileSync(path.join(dir, 'tree/file'), 'content\n');
    sum = (await commit({ repo: repoPath, branch: 'main', source: path.join(dir, 'tree'), timestamp: 1_700_000_000 })).commit;
  });

  it('an unsigned commit has no signature to verify', () => {
    expect(codeOf(() => verifyCommit({ repo: repoPath, rev: 'main', keys: pub(0) }))).toBe('SIGNATURE_MISSING');
  });

  it('signs the commit object bytes into .commitmeta as aay under ostree.sign.ed25519, keeping other keys', () => {
    const repo = Repo.open(repoPath);
    // Someone else's detached metadata is already there.
    writeCommitMeta(repo, sum, [['xa.other', { type: 's', value: 'kept' }]]);
    const r = signCommit({ repo: repoPath, rev: 'main', keyFile: keyFile(0) });
    expect(r).toMatchObject({ checksum: sum, added: 1, signatures: 1, keys: [pairs[0].publicKey] });
    const meta = parseVardict(fs.readFileSync(repo.objectFile(sum, 'commitmeta')));
    expect(meta.find(([k]) => k === 'xa.other')?.[1]).toEqual({ type: 's', value: 'kept' });
    const sigs = meta.find(([k]) => k === ED25519_KEY)?.[1];
    expect(sigs?.type).toBe('aay');
    const [sig] = sigs?.value as Buffer[];
    expect(sig).toEqual(signData(fs.readFileSync(repo.objectFile(sum, 'commit')), parseSecretKey(pairs[0].secretKey)));
    expect(verifyCommit({ repo: repoPath, rev: sum, keys: pub(0) }).key).toBe(pairs[0].publicKey);
  });

  it('signing again with the same key adds nothing; other keys append', () => {
    expect(signCommit({ repo: repoPath, rev: 'main', keyFile: keyFile(0) }).added).toBe(0);
    const r = signCommit({ repo: repoPath, rev: 'main', keyFile: path.join(keyDir, 'both') });
    expect(r).toMatchObject({ added: 2, signatures: 3 });
    for (const i of [0, 1, 2]) expect(verifyCommit({ repo: repoPath, rev: 'main', keys: pub(i) }).signatures).toBe(3);
  });

  it('a key that did not sign does not verify', () => {
    const stranger = [parsePublicKey(generateKeyPair().publicKey)];
    expect(codeOf(() => verifyCommit({ repo: repoPath, rev: 'main', keys: stranger }))).toBe('SIGNATURE_INVALID');
  });

  it('a changed commit object no longer verifies', () => {
    const file = Repo.open(repoPath).objectFile(sum, 'commit');
    const orig = fs.readFileSync(file);
    const changed = Buffer.from(orig);
    changed[changed.length - 40] ^= 1;
    try {
      fs.chmodSync(file, 0o644);
      fs.writeFileSync(file, changed);
      expect(codeOf(() => verifyCommit({ repo: repoPath, rev: sum, keys: pub(0) }))).toBe('SIGNATURE_INVALID');
    } finally {
      fs.writeFileSync(file, orig);
    }
    expect(verifyCommit({ repo: repoPath, rev: sum, keys: pub(0) }).key).toBe(pairs[0].publicKey);
  });

  it('a bad key file leaves the detached metadata as it was', () => {
    const file = Repo.open(repoPath).objectFile(sum, 'commitmeta');
    const before = fs.readFileSync(file);
    fs.writeFileSync(path.join(keyDir, 'bad'), `${pairs[0].secretKey}\nnot-a-key\n`);
    expect(codeOf(() => signCommit({ repo: repoPath, rev: 'main', keyFile: path.join(keyDir, 'bad') }))).toBe('KEY_INVALID');
    expect(fs.readFileSync(file)).toEqual(before);
    expect(fs.readdirSync(path.join(repoPath, 'tmp')).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });
});

describe('strata keygen and strata sign', () => {
  it('keygen writes a 0600 secret key and a .pub, and never overwrites', () => {
    const dir = tmpDir('strata-keygen-');
    const k = path.join(dir, 'signing');
    const r = strata(['keygen', '--output', k, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const { publicKey } = r.json<{ publicKey: string }>();
    expect(fs.statSync(k).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(`${k}.pub`, 'utf8')).toBe(publicKey + '\n');
    expect(parseSecretKey(fs.readFileSync(k, 'utf8')).public.toString('base64')).toBe(publicKey);
    const again = strata(['keygen', '--output', k]);
    expect(again.status).toBe(73);
    expect(again.stderr).toMatch(/^strata: .*already exists.*\n$/);
    expect(parseSecretKey(fs.readFileSync(k, 'utf8')).public.toString('base64')).toBe(publicKey);
  });

  it('sign, then sign --verify with a key file or the base64 key; exit codes say what went wrong', () => {
    const dir = tmpDir('strata-sign-cli-');
    const repo = path.join(dir, 'repo');
    expect(strata(['init', '--repo', repo]).status).toBe(0);
    makeTree(path.join(dir, 'tree'));
    expect(strata(['commit', '--repo', repo, '-b', 'os/stable', path.join(dir, 'tree')]).status).toBe(0);
    expect(strata(['keygen', '--output', path.join(dir, 'k')]).status).toBe(0);
    expect(strata(['keygen', '--output', path.join(dir, 'other')]).status).toBe(0);
    const pubText = fs.readFileSync(path.join(dir, 'k.pub'), 'utf8').trim();

    const unsigned = strata(['sign', '--verify', 'os/stable', '--repo', repo, '--verify-key', path.join(dir, 'k.pub')]);
    expect(unsigned.status).toBe(66);
    const s = strata(['sign', 'os/stable', '--repo', repo, '--key', path.join(dir, 'k'), '--json']);
    expect(s.status, s.stderr).toBe(0);
    expect(s.json<{ added: number }>().added).toBe(1);
    const v = strata(['sign', '--verify', 'os/stable', '--repo', repo, '--verify-key', pubText, '--json']);
    expect(v.status, v.stderr).toBe(0);
    expect(v.json<{ valid: boolean; key: string }>()).toMatchObject({ valid: true, key: pubText });
    const wrong = strata(['sign', '--verify', 'os/stable', '--repo', repo, '--verify-key', path.join(dir, 'other.pub')]);
    expect(wrong.status).toBe(1);
    expect(wrong.stderr.split('\n')).toHaveLength(2);
    const either = strata(['sign', '--verify', 'os/stable', '--repo', repo, '--verify-key', path.join(dir, 'other.pub'), '--verify-key', pubText]);
    expect(either.status, either.stderr).toBe(0);
    expect(strata(['show', '--repo', repo, 'os/stable', '--json']).json<{ detachedMetadata: Record<string, unknown> }>().detachedMetadata).toHaveProperty(ED25519_KEY);

    expect(strata(['sign', 'os/stable', '--repo', repo]).status).toBe(2);
    expect(strata(['sign', 'os/stable', '--repo', repo, '--key', path.join(dir, 'k.pub')]).status).toBe(65);
    expect(strata(['sign', '--verify', 'os/stable', '--repo', repo, '--verify-key', 'garbage!']).status).toBe(65);
    expect(strata(['sign', 'nosuchref', '--repo', repo, '--key', path.join(dir, 'k')]).status).toBe(66);
  });
});
