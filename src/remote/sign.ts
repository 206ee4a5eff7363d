// ed25519 signatures as libostree makes them (ostree-sign-ed25519.c, ostree-sign.c):
// - A public key is written as base64 of its 32 bytes; a secret key as base64
//   of libsodium's 64-byte form, the 32-byte seed followed by the public key.
//   Key files hold one key per line.
// - A commit signature covers the commit object's bytes (the serialized
//   variant, exactly as stored) and is kept in the commit's detached metadata
//   (`objects/xx/yyy.commitmeta`, an a{sv}) under `ostree.sign.ed25519` as
//   `aay`, one 64-byte signature per element. Signing appends to that array
//   and keeps every other key.
// - The summary is signed the same way; its signatures go in `summary.sig`,
//   an a{sv} with the same key.
// - Verification succeeds when any signature verifies with any trusted key.

import fs from 'node:fs';
import path from 'node:path';
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { StrataError, ioError } from '../errors.js';
import type { Variant } from '../core/gvariant.js';
import { type Checksum, type Metadata, parseVardict, serializeVardict } from '../core/objects.js';
import { glibDictOrder } from '../core/gvariant-dict.js';
import { Repo, writeFileAtomic } from '../repo/repo.js';
import { resolveRev } from '../repo/refs.js';
import { lockRepo } from '../repo/transaction.js';

/** The detached-metadata key of ed25519 signatures, as libostree names it. */
export const ED25519_KEY = 'ostree.sign.ed25519';
const PUBLIC_BYTES = 32;
const SECRET_BYTES = 64;
const SIGNATURE_BYTES = 64;
/** PKCS#8 DER prefix of an Ed25519 private key (RFC 8410): the 32-byte seed follows. */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export interface SecretKey {
  /** libsodium's 64 bytes: seed then public key. */
  secret: Buffer;
  public: Buffer;
  key: KeyObject;
}

export interface PublicKey {
  public: Buffer;
  key: KeyObject;
}

/** Strict base64 (RFC 4648, with padding): Buffer.from(_, 'base64') silently skips bad characters. */
function decodeBase64(text: string): Buffer | null {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) return null;
  return Buffer.from(text, 'base64');
}

function seedKey(seed: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

function rawPublic(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  return Buffer.from(jwk.x as string, 'base64url');
}

export function generateKeyPair(): { secretKey: string; publicKey: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const seed = Buffer.from(jwk.d as string, 'base64url');
  const pub = Buffer.from(jwk.x as string, 'base64url');
  return { secretKey: Buffer.concat([seed, pub]).toString('base64'), publicKey: pub.toString('base64') };
}

/** Parses one base64 secret key (libsodium's 64-byte seed+public form), checking that its halves agree. */
export function parseSecretKey(text: string, where = 'secret key'): SecretKey {
  const raw = decodeBase64(text.trim());
  if (!raw || raw.length !== SECRET_BYTES) {
    const hint = raw?.length === PUBLIC_BYTES ? ' (that is a public key)' : '';
    throw new StrataError('KEY_INVALID', `${where} is not a base64 ed25519 secret key of ${SECRET_BYTES} bytes${hint}`, { where });
  }
  const key = seedKey(raw.subarray(0, 32));
  const pub = rawPublic(createPublicKey(key));
  // libsodium signs with the stored public half; a mismatch would make signatures nobody can verify.
  if (!pub.equals(raw.subarray(32))) {
    throw new StrataError('KEY_INVALID', `${where}: its second half is not the public key of its seed`, { where });
  }
  return { secret: raw, public: pub, key };
}

/** Parses one base64 public key (32 bytes). */
export function parsePublicKey(text: string, where = 'public key'): PublicKey {
  const raw = decodeBase64(text.trim());
  if (!raw || raw.length !== PUBLIC_BYTES) {
    const hint = raw?.length === SECRET_BYTES ? ' (that is a secret key: use its .pub file)' : '';
    throw new StrataError('KEY_INVALID', `${where} is not a base64 ed25519 public key of ${PUBLIC_BYTES} bytes${hint}`, { where });
  }
  try {
    return { public: raw, key: createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' }) };
  } catch {
    throw new StrataError('KEY_INVALID', `${where} is not a valid ed25519 public key`, { where });
  }
}

function keyLines(text: string): string[] {
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
}

function readKeyFile(file: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StrataError('KEY_INVALID', `key file ${file} does not exist`, { path: file });
    throw ioError(err, 'read key file', file);
  }
  if (!st.isFile()) throw new StrataError('KEY_INVALID', `key file ${file} is not a regular file`, { path: file });
  if (st.size > 1024 * 1024) throw new StrataError('KEY_INVALID', `key file ${file} is too large to hold keys`, { path: file });
  return fs.readFileSync(file, 'utf8');
}

/** Secret keys from a file: one base64 key per line, as `ostree sign --keys-file` reads them. */
export function loadSecretKeys(file: string): SecretKey[] {
  const lines = keyLines(readKeyFile(file));
  if (lines.length === 0) throw new StrataError('KEY_INVALID', `key file ${file} holds no key`, { path: file });
  return lines.map((l, i) => parseSecretKey(l, `line ${i + 1} of ${file}`));
}

/** Public keys from a file: one base64 key per line (the format of `verification-ed25519-file`). */
export function loadPublicKeys(file: string): PublicKey[] {
  const lines = keyLines(readKeyFile(file));
  if (lines.length === 0) throw new StrataError('KEY_INVALID', `key file ${file} holds no key`, { path: file });
  return lines.map((l, i) => parsePublicKey(l, `line ${i + 1} of ${file}`));
}

/** A public key given on the command line: a key file when one exists at that path, else the base64 key itself. */
export function resolvePublicKeys(spec: string): PublicKey[] {
  if (fs.existsSync(spec)) return loadPublicKeys(spec);
  if (decodeBase64(spec.trim()) === null) {
    throw new StrataError('KEY_INVALID', `'${spec}' is neither a key file nor a base64 ed25519 public key`, { spec });
  }
  return [parsePublicKey(spec, 'the key given')];
}

export function signData(data: Uint8Array, key: SecretKey): Buffer {
  return cryptoSign(null, data, key.key);
}

export interface VerifyOutcome {
  /** The public key (base64) that verified a signature. */
  key: string;
  /** How many ed25519 signatures there were. */
  signatures: number;
}

/**
 * Checks `signatures` (64-byte ed25519 signatures over `data`) against the
 * trusted keys: one good signature from one trusted key is enough, as in
 * libostree. Throws SIGNATURE_MISSING when there are none, SIGNATURE_INVALID
 * when none verifies.
 */
export function verifySignatures(data: Uint8Array, signatures: readonly Buffer[], keys: readonly PublicKey[], what: string): VerifyOutcome {
  if (keys.length === 0) throw new StrataError('KEY_INVALID', `no public key to verify ${what} with`, { what });
  if (signatures.length === 0) throw new StrataError('SIGNATURE_MISSING', `${what} has no ed25519 signature (${ED25519_KEY})`, { what });
  for (const sig of signatures) {
    if (sig.length !== SIGNATURE_BYTES) continue;
    for (const k of keys) {
      if (cryptoVerify(null, data, k.key, sig)) return { key: k.public.toString('base64'), signatures: signatures.length };
    }
  }
  throw new StrataError('SIGNATURE_INVALID', `no signature of ${what} verifies with the ${keys.length === 1 ? 'trusted key' : `${keys.length} trusted keys`}`, { what, signatures: signatures.length });
}

/** The ed25519 signatures in an a{sv} (detached metadata or summary.sig); [] when there are none. */
export function signaturesIn(meta: Metadata | null, what: string): Buffer[] {
  const entry = meta?.find(([k]) => k === ED25519_KEY);
  if (!entry) return [];
  const v = entry[1];
  if (v.type !== 'aay') throw new StrataError('SIGNATURE_INVALID', `${what}: ${ED25519_KEY} has type ${v.type}, not aay`, { what });
  return v.value as Buffer[];
}

/**
 * Adds signatures to an a{sv} as libostree does (GVariantDict from the old
 * entries, the signature array extended, the dict rewritten in GLib's order).
 * A signature already present is not added twice (ed25519 is deterministic,
 * so signing again with the same key gives the same bytes).
 */
export function addSignatures(meta: Metadata | null, signatures: readonly Buffer[], what: string): { meta: Metadata; added: number } {
  const old = signaturesIn(meta, what);
  const fresh = signatures.filter((s, i) => !old.some((o) => o.equals(s)) && signatures.findIndex((t) => t.equals(s)) === i);
  const value: Variant = { type: 'aay', value: [...old, ...fresh] };
  const entries: [string, Variant][] = [...(meta ?? []), [ED25519_KEY, value]];
  return { meta: glibDictOrder(entries), added: fresh.length };
}

export interface SignCommitResult {
  checksum: Checksum;
  keys: string[];
  added: number;
  signatures: number;
}

/** Signs a commit with every key in `keyFile`, writing its detached metadata atomically. */
export function signCommit(opts: { repo: string; rev: string; keyFile: string }): SignCommitResult {
  const keys = loadSecretKeys(opts.keyFile);
  const repo = Repo.open(opts.repo);
  const checksum = resolveRev(repo, opts.rev);
  const unlock = lockRepo(repo);
  try {
    const data = repo.readMetadataBytes(checksum, 'commit');
    const existing = repo.loadCommitMeta(checksum);
    const { meta, added } = addSignatures(existing, keys.map((k) => signData(data, k)), `commit ${checksum}`);
    if (added > 0) writeCommitMeta(repo, checksum, meta);
    return { checksum, keys: keys.map((k) => k.public.toString('base64')), added, signatures: signaturesIn(meta, '').length };
  } finally {
    unlock();
  }
}

/** Writes a commit's detached metadata: temp file in tmp/, fsync, rename, as a ref is written. */
export function writeCommitMeta(repo: Repo, checksum: Checksum, meta: Metadata): void {
  const file = repo.objectFile(checksum, 'commitmeta');
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeFileAtomic(file, serializeVardict(meta), 0o644, path.join(repo.path, 'tmp'));
  } catch (err) {
    throw ioError(err, 'write detached metadata', file);
  }
}

export interface VerifyCommitResult extends VerifyOutcome {
  checksum: Checksum;
}

/** Verifies a commit's ed25519 signatures against trusted public keys. */
export function verifyCommit(opts: { repo: string; rev: string; keys: readonly PublicKey[] }): VerifyCommitResult {
  const repo = Repo.open(opts.repo);
  const checksum = resolveRev(repo, opts.rev);
  const data = repo.readMetadataBytes(checksum, 'commit');
  const meta = repo.loadCommitMeta(checksum);
  return { checksum, ...verifySignatures(data, signaturesIn(meta, `commit ${checksum}`), opts.keys, `commit ${checksum}`) };
}

/** Parses `summary.sig` (an a{sv}); malformed data is SUMMARY_MALFORMED. */
export function parseSummarySig(data: Uint8Array): Metadata {
  try {
    return parseVardict(data);
  } catch (err) {
    if (err instanceof StrataError) throw new StrataError('SUMMARY_MALFORMED', `summary.sig cannot be parsed: ${err.message}`, {});
    throw err;
  }
}

/** Writes a key pair: the secret key to `file` (mode 0600, never overwriting) and the public key to `file.pub`. */
export function writeKeyPair(file: string, pair: { secretKey: string; publicKey: string }): { secretFile: string; publicFile: string } {
  const secretFile = path.resolve(file);
  const publicFile = `${secretFile}.pub`;
  for (const f of [secretFile, publicFile]) {
    if (fs.existsSync(f)) throw new StrataError('KEY_EXISTS', `${f} already exists; strata never overwrites a key`, { path: f });
  }
  const writeNew = (f: string, text: string, mode: number): void => {
    // 'wx': fail rather than follow or replace anything that appeared meanwhile.
    const fd = fs.openSync(f, 'wx', mode);
    try {
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  };
  try {
    writeNew(secretFile, pair.secretKey + '\n', 0o600);
    try {
      writeNew(publicFile, pair.publicKey + '\n', 0o644);
    } catch (err) {
      fs.rmSync(secretFile, { force: true });
      throw err;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new StrataError('KEY_EXISTS', `${file} appeared while writing; strata never overwrites a key`, { path: file });
    throw ioError(err, 'write key file', file);
  }
  return { secretFile, publicFile };
}
