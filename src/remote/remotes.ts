// Remotes, kept in the repository's `config` as libostree keeps them
// (ostree-repo.c, ot-remote-builtin-add.c, ostree-repo-pull-verify.c):
//
//   [remote "NAME"]
//   url=http://…
//   gpg-verify=false                  strata does not do GPG; ostree's default is true
//   sign-verify=ed25519               commits must carry a good ed25519 signature
//   sign-verify-summary=ed25519       so must the summary (summary.sig)
//   verification-ed25519-key=BASE64   one trusted public key, inline
//   verification-ed25519-file=PATH    or a file of keys, one per line
//
// `sign-verify` (and `sign-verify-summary`) take a GKeyFile boolean or a
// list of signature types; libostree verifies with every type listed (or,
// for `true`, with every type it has keys for, falling back to system key
// files). strata knows ed25519 only and reads keys from the remote's config.

import path from 'node:path';
import { StrataError } from '../errors.js';
import { Repo } from '../repo/repo.js';
import { editRepoConfig, readRepoConfig } from '../repo/config.js';
import { type KeyFile, keyFileBoolean } from '../repo/keyfile.js';
import { type PublicKey, loadPublicKeys, parsePublicKey, parseSummarySig, resolvePublicKeys, signaturesIn, verifySignatures } from './sign.js';
import { type SummaryView, parseSummary, viewSummary } from './summary.js';
import { fetchBytes, remoteFileUrl } from './http.js';

/** OSTREE_REMOTE_NAME_REGEXP: a ref fragment. */
const REMOTE_NAME = /^\w[-.\w]*$/;

export function validateRemoteName(name: string): void {
  if (!REMOTE_NAME.test(name)) {
    throw new StrataError('INVALID_REMOTE', `invalid remote name '${name}': use letters, digits, '_', '-' and '.', starting with a letter, digit or '_'`, { name });
  }
}

export function validateRemoteUrl(url: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new StrataError('INVALID_REMOTE', `'${url}' is not a URL; give one like http://host:port/repo/`, { url });
  }
  if (/[\s\x00-\x1f\x7f]/.test(url)) throw new StrataError('INVALID_REMOTE', `URL ${JSON.stringify(url)} holds spaces or control characters`, { url });
  if (!['http:', 'https:', 'file:'].includes(u.protocol)) {
    throw new StrataError('INVALID_REMOTE', `URL '${url}' has scheme ${u.protocol}; use http, https or file`, { url });
  }
  if (u.username || u.password) throw new StrataError('INVALID_REMOTE', `URL '${url}' holds credentials; strata does not store secrets in the config`, { url });
}

const groupOf = (name: string): string => `remote "${name}"`;

export interface RemoteInfo {
  name: string;
  url: string;
  /** Whether commits must carry a good ed25519 signature. */
  signVerify: boolean;
  /** Whether the summary must carry a good ed25519 signature. */
  signVerifySummary: boolean;
  /** `verification-ed25519-key`, when set. */
  verificationKey: string | null;
  /** `verification-ed25519-file`, when set. */
  verificationFile: string | null;
  gpgVerify: boolean;
}

/** Which signature types a `sign-verify`-style value asks for: true means "ed25519 when keys are set". */
function signTypes(value: string | undefined, key: string, remote: string): 'none' | 'any' | string[] {
  if (value === undefined || value.trim() === '') return 'none';
  const b = keyFileBoolean(value);
  if (b !== undefined) return b ? 'any' : 'none';
  const types = value.split(/[;,]/).map((t) => t.trim()).filter(Boolean);
  const unknown = types.filter((t) => t !== 'ed25519');
  if (unknown.length > 0) {
    throw new StrataError('REPO_CONFIG', `remote ${remote}: ${key}=${value} asks for ${unknown.join(', ')}; strata verifies ed25519 signatures only`, { remote, key });
  }
  return types;
}

function remoteInfo(config: KeyFile, name: string): RemoteInfo {
  const entries = config.entries(groupOf(name));
  const url = entries.get('url');
  if (url === undefined) throw new StrataError('REPO_CONFIG', `remote ${name} has no url in the config`, { remote: name });
  const key = entries.get('verification-ed25519-key') ?? null;
  const file = entries.get('verification-ed25519-file') ?? null;
  const commit = signTypes(entries.get('sign-verify'), 'sign-verify', name);
  const summaryValue = entries.get('sign-verify-summary');
  const summary = signTypes(summaryValue, 'sign-verify-summary', name);
  // `true` with no key configured still means "verify": strata then refuses, rather than trusting silently.
  const on = (t: 'none' | 'any' | string[]): boolean => t !== 'none';
  return {
    name,
    url,
    signVerify: on(commit),
    // Unset: follow the commit setting (libostree would skip the summary; strata does not).
    signVerifySummary: summaryValue === undefined ? on(commit) : on(summary),
    verificationKey: key,
    verificationFile: file,
    gpgVerify: keyFileBoolean(entries.get('gpg-verify')) ?? true,
  };
}

export function listRemotes(opts: { repo: string }): RemoteInfo[] {
  const config = readRepoConfig(Repo.open(opts.repo));
  return config
    .groups()
    .map((g) => /^remote "(.*)"$/.exec(g)?.[1])
    .filter((n): n is string => n !== undefined)
    .map((n) => remoteInfo(config, n));
}

export function getRemote(opts: { repo: string; name: string }): RemoteInfo {
  validateRemoteName(opts.name);
  const config = readRepoConfig(Repo.open(opts.repo));
  if (!config.hasGroup(groupOf(opts.name))) {
    throw new StrataError('REMOTE_NOT_FOUND', `no remote '${opts.name}' in ${opts.repo}; add it with 'strata remote add ${opts.name} URL'`, { remote: opts.name });
  }
  return remoteInfo(config, opts.name);
}

/** The trusted public keys of a remote (inline key and key file together, as libostree loads them). */
export function remoteKeys(remote: RemoteInfo): PublicKey[] {
  const keys: PublicKey[] = [];
  if (remote.verificationFile !== null) keys.push(...loadPublicKeys(remote.verificationFile));
  if (remote.verificationKey !== null) keys.push(parsePublicKey(remote.verificationKey, `verification-ed25519-key of remote ${remote.name}`));
  if (keys.length === 0) {
    throw new StrataError('KEY_INVALID', `remote ${remote.name} requires signatures but has no verification-ed25519-key or verification-ed25519-file`, { remote: remote.name });
  }
  return keys;
}

export interface AddRemoteOptions {
  repo: string;
  name: string;
  url: string;
  /** A public key file or a base64 public key: commits and the summary must be signed by it. */
  signVerify?: string;
  /** Record explicitly that this remote is not verified. */
  noSignVerify?: boolean;
}

export function addRemote(opts: AddRemoteOptions): RemoteInfo {
  validateRemoteName(opts.name);
  validateRemoteUrl(opts.url);
  if (opts.signVerify !== undefined && opts.noSignVerify) throw new StrataError('USAGE', 'give either --sign-verify KEY or --no-sign-verify, not both');
  // Keys are checked before anything is written.
  let keyEntry: [string, string] | undefined;
  if (opts.signVerify !== undefined) {
    const keys = resolvePublicKeys(opts.signVerify);
    // One key goes inline, so the config stands alone; several stay in their file (ostree's inline key holds one).
    keyEntry = keys.length === 1 ? ['verification-ed25519-key', keys[0].public.toString('base64')] : ['verification-ed25519-file', path.resolve(opts.signVerify)];
  }
  const repo = Repo.open(opts.repo);
  return editRepoConfig(repo, (config) => {
    const group = groupOf(opts.name);
    if (config.hasGroup(group)) {
      throw new StrataError('REMOTE_EXISTS', `remote '${opts.name}' already exists in ${opts.repo}; delete it first with 'strata remote delete ${opts.name}'`, { remote: opts.name });
    }
    config.set(group, 'url', opts.url);
    config.set(group, 'gpg-verify', 'false');
    if (keyEntry) {
      config.set(group, 'sign-verify', 'ed25519');
      config.set(group, 'sign-verify-summary', 'ed25519');
      config.set(group, keyEntry[0], keyEntry[1]);
    } else if (opts.noSignVerify) {
      config.set(group, 'sign-verify', 'false');
    }
    return remoteInfo(config, opts.name);
  });
}

export function deleteRemote(opts: { repo: string; name: string }): void {
  validateRemoteName(opts.name);
  const repo = Repo.open(opts.repo);
  editRepoConfig(repo, (config) => {
    if (!config.removeGroup(groupOf(opts.name))) {
      throw new StrataError('REMOTE_NOT_FOUND', `no remote '${opts.name}' in ${opts.repo}`, { remote: opts.name });
    }
  });
}

export interface RemoteSummary {
  remote: string;
  url: string;
  /** The key (base64) that verified summary.sig, or null when the remote is not verified. */
  verifiedBy: string | null;
  summary: SummaryView;
  /** The summary's bytes, as fetched (and verified). */
  bytes: Buffer;
}

/** Reads a file of a remote (`summary`, `summary.sig`): null when absent (404). */
export type RemoteGet = (rel: string, opts: { maxBytes: number }) => Promise<Buffer | null>;

/**
 * Fetches a remote's summary; when the remote requires signatures, summary.sig
 * must verify first. `get` is how files are read (a pull passes its fetcher:
 * retries, idle timeout); by default one plain GET each.
 */
export async function fetchRemoteSummary(opts: { repo: string; name: string; get?: RemoteGet }): Promise<RemoteSummary> {
  const remote = getRemote(opts);
  const keys = remote.signVerifySummary ? remoteKeys(remote) : [];
  const get: RemoteGet = opts.get ?? ((rel, o) => fetchBytes(remoteFileUrl(remote.url, rel), { allowMissing: true, maxBytes: o.maxBytes }));
  for (let attempt = 0; ; attempt++) {
    const bytes = await get('summary', { maxBytes: 64 * 1024 * 1024 });
    if (bytes === null) {
      throw new StrataError('SUMMARY_NOT_FOUND', `remote ${remote.name} (${remote.url}) has no summary; run 'strata summary -u' on the server's repository`, { remote: remote.name });
    }
    let sig: Buffer | null = null;
    try {
      let verifiedBy: string | null = null;
      if (remote.signVerifySummary) {
        sig = await get('summary.sig', { maxBytes: 16 * 1024 * 1024 });
        if (sig === null) {
          throw new StrataError('SIGNATURE_MISSING', `remote ${remote.name} requires signatures but serves no summary.sig; sign it with 'strata summary -u --sign-key KEY' on the server`, { remote: remote.name });
        }
        verifiedBy = verifySignatures(bytes, signaturesIn(parseSummarySig(sig), 'summary.sig'), keys, `the summary of remote ${remote.name}`).key;
      }
      return { remote: remote.name, url: remote.url, verifiedBy, summary: viewSummary(parseSummary(bytes)), bytes };
    } catch (err) {
      // The summary has no checksum: wrong bytes on the wire show as an unparsable file or a
      // signature that does not verify. Both files are asked for once more before refusing.
      const wire = err instanceof StrataError && ['SUMMARY_MALFORMED', 'SIGNATURE_INVALID'].includes(err.code);
      const sigWire = err instanceof StrataError && err.code === 'SIGNATURE_MISSING' && sig !== null;
      if (attempt >= 1 || !(wire || sigWire)) throw err;
    }
  }
}
