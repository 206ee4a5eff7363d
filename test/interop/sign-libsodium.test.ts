// strata's ed25519 against libsodium, the library libostree signs and
// verifies with (ostree-sign-ed25519.c: crypto_sign_detached,
// crypto_sign_verify_detached, 64-byte secret keys of seed + public key).
// Debian's ostree 2022.7 is built without it, so this is the nearest real
// peer: libsodium is called through Python's ctypes.

import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseVardict } from '../../src/core/objects.js';
import { strata, tmpDir } from '../helpers/fixtures.js';

const PY = `
import base64, ctypes, json, sys
s = ctypes.CDLL('libsodium.so.23')
assert s.sodium_init() >= 0
req = json.load(sys.stdin)
sk = base64.b64decode(req['secret'])
msg = base64.b64decode(req['message'])
out = {}
pk = ctypes.create_string_buffer(32)
s.crypto_sign_ed25519_sk_to_pk(pk, sk)
out['public'] = base64.b64encode(pk.raw).decode()
seed_pk = ctypes.create_string_buffer(32)
seed_sk = ctypes.create_string_buffer(64)
s.crypto_sign_seed_keypair(seed_pk, seed_sk, sk[:32])
out['secretFromSeed'] = base64.b64encode(seed_sk.raw).decode()
sig = ctypes.create_string_buffer(64)
s.crypto_sign_detached(sig, None, msg, ctypes.c_ulonglong(len(msg)), sk)
out['signature'] = base64.b64encode(sig.raw).decode()
theirs = base64.b64decode(req['signature'])
out['verifies'] = s.crypto_sign_verify_detached(theirs, msg, ctypes.c_ulonglong(len(msg)), pk) == 0
bad = bytearray(msg) + b'x'
out['verifiesChanged'] = s.crypto_sign_verify_detached(theirs, bytes(bad), ctypes.c_ulonglong(len(bad)), pk) == 0
print(json.dumps(out))
`;

const haveSodium = spawnSync('python3', ['-c', "import ctypes; ctypes.CDLL('libsodium.so.23')"]).status === 0;

interface Sodium { public: string; secretFromSeed: string; signature: string; verifies: boolean; verifiesChanged: boolean }

function sodium(secret: string, message: Buffer, signature: Buffer): Sodium {
  const r = spawnSync('python3', ['-c', PY], { input: JSON.stringify({ secret, message: message.toString('base64'), signature: signature.toString('base64') }), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python3/libsodium failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Sodium;
}

describe.skipIf(!haveSodium)('ed25519: strata and libsodium agree', () => {
  let dir: string;
  let repo: string;
  let sum: string;

  beforeAll(() => {
    dir = tmpDir('strata-sodium-');
    repo = path.join(dir, 'repo');
    fs.mkdirSync(path.join(dir, 'tree'));
    fs.writeFileSync(path.join(dir, 'tree/f'), 'signed content\n');
    expect(strata(['init', '--repo', repo]).status).toBe(0);
    sum = strata(['commit', '--repo', repo, '-b', 'main', path.join(dir, 'tree')]).stdout.trim();
    expect(strata(['keygen', '--output', path.join(dir, 'key')]).status).toBe(0);
    expect(strata(['sign', 'main', '--repo', repo, '--key', path.join(dir, 'key')]).status).toBe(0);
  });

  it('on keys, signatures of the commit object, and verification', () => {
    const secret = fs.readFileSync(path.join(dir, 'key'), 'utf8').trim();
    const publicKey = fs.readFileSync(path.join(dir, 'key.pub'), 'utf8').trim();
    const commitBytes = fs.readFileSync(path.join(repo, 'objects', sum.slice(0, 2), `${sum.slice(2)}.commit`));
    const meta = parseVardict(fs.readFileSync(path.join(repo, 'objects', sum.slice(0, 2), `${sum.slice(2)}.commitmeta`)));
    const stored = meta.find(([k]) => k === 'ostree.sign.ed25519')?.[1].value as Buffer[];
    expect(stored).toHaveLength(1);
    const [ours] = stored;
    const s = sodium(secret, commitBytes, ours);
    // The key pair is what libsodium derives from the seed; the public half is the .pub file.
    expect(s.secretFromSeed).toBe(secret);
    expect(s.public).toBe(publicKey);
    // ed25519 is deterministic: libsodium signs the commit object to the same bytes.
    expect(Buffer.from(s.signature, 'base64').equals(ours)).toBe(true);
    expect(s.verifies).toBe(true);
    expect(s.verifiesChanged).toBe(false);
  });
});
