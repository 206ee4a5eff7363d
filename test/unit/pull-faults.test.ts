// A seeded storm of network faults against `strata pull`: many pulls from a
// server on 127.0.0.1 that, request by request, cuts connections mid-body,
// stalls (no byte for longer than the pull's idle timeout), sends a body
// shorter than its Content-Length and closes, answers 500 or 503, or flips a
// byte. After every pull one of two things holds:
//   - it succeeded: the ref names exactly the commit the server's ref names,
//     every object that commit needs is present, `strata fsck` is clean;
//   - it failed with a StrataError of an expected code and a one-line message,
//     the ref is unchanged, and `strata fsck` is still clean.
// Always: every object in objects/ hashes to its name (nothing corrupt is
// ever stored) and no local ref names a commit the repository lacks.
//
// The seed is printed; rerun one with STRATA_FAULT_SEED=N (and more pulls with
// STRATA_FAULT_PULLS=N).

import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { Repo } from '../../src/repo/repo.js';
import { commit } from '../../src/repo/commit.js';
import { fsck } from '../../src/repo/fsck.js';
import { listRefs, readRef } from '../../src/repo/refs.js';
import { listObjects, markTrees, type ObjectKey } from '../../src/repo/reachable.js';
import { verifyContentFile } from '../../src/repo/verify-content.js';
import { updateSummary } from '../../src/remote/summary.js';
import { generateKeyPair, signCommit, writeKeyPair } from '../../src/remote/sign.js';
import { addRemote } from '../../src/remote/remotes.js';
import { pull, pullStagingDir } from '../../src/remote/pull.js';
import { StrataError, type ErrorCode } from '../../src/errors.js';
import type { Checksum } from '../../src/core/objects.js';
import { tmpDir } from '../helpers/fixtures.js';
import { rng } from '../helpers/random.js';
import { type Fault, serveRepo } from '../helpers/pull-server.js';

process.env.STRATA_WORKERS ??= '1';

const SEED = Number(process.env.STRATA_FAULT_SEED ?? Math.floor(Math.random() * 2 ** 31));
const PULLS = Number(process.env.STRATA_FAULT_PULLS ?? 30);
/** Idle timeout given to every pull: a stall must cost this, not the default 30 s. */
const TIMEOUT_MS = 300;
const FAULTS: Fault[] = ['cut', 'stall', 'truncate', 'corrupt', '500', '503'];
/** What a pull may fail with when the network misbehaves; anything else is a bug. */
const EXPECTED_FAILURES: ErrorCode[] = ['HTTP_ERROR', 'OBJECT_CORRUPT', 'OBJECT_MALFORMED', 'SUMMARY_MALFORMED', 'SIGNATURE_INVALID', 'SIGNATURE_MISSING'];

/** Every object in the repository hashes to its name (commitmeta has no name to check). */
function corruptObjects(repoPath: string): string[] {
  const repo = Repo.open(repoPath);
  const bad: string[] = [];
  for (const o of listObjects(repo)) {
    if (o.type === 'commitmeta') continue;
    if (o.type === 'file') {
      if (verifyContentFile(o.file, o.checksum, repo.archive).status !== 'ok') bad.push(o.file);
    } else if (createHash('sha256').update(fs.readFileSync(o.file)).digest('hex') !== o.checksum) bad.push(o.file);
  }
  // Nothing half-written under objects/ either.
  for (const prefix of fs.readdirSync(path.join(repoPath, 'objects'))) {
    for (const name of fs.readdirSync(path.join(repoPath, 'objects', prefix))) if (!/^[0-9a-f]{62}\.(file|filez|dirtree|dirmeta|commit|commitmeta)$/.test(name)) bad.push(`${prefix}/${name}`);
  }
  return bad;
}

describe('pull under random network faults', () => {
  let dir: string;
  let server: string;
  const key = generateKeyPair();
  let keyPub: string;
  /** ref → commit, as the server's summary names them. */
  const heads = new Map<string, Checksum>();
  const needs = new Map<Checksum, Set<ObjectKey>>();

  beforeAll(async () => {
    dir = tmpDir('strata-pull-faults-');
    server = path.join(dir, 'server');
    Repo.init(server, 'archive');
    const tree = path.join(dir, 'tree');
    const r = rng(7);
    for (let d = 0; d < 3; d++) {
      fs.mkdirSync(path.join(tree, `d${d}`, 'sub'), { recursive: true });
      for (let f = 0; f < 6; f++) fs.writeFileSync(path.join(tree, `d${d}`, f % 2 ? `sub/f${f}` : `f${f}`), `file ${d}/${f} `.repeat(20 + f * 30));
    }
    // Incompressible and above the in-memory limit: fetched into a .partial, continued with Range.
    const big = Buffer.alloc(1_300_000);
    for (let i = 0; i < big.length; i++) big[i] = Math.floor(r() * 256);
    fs.writeFileSync(path.join(tree, 'big.bin'), big);
    const keyFiles = writeKeyPair(path.join(dir, 'key'), key);
    keyPub = keyFiles.publicFile;
    let ts = 1_700_000_000;
    for (const ref of ['os/one', 'os/two', 'os/three']) {
      fs.writeFileSync(path.join(tree, 'd1', 'f0'), `changed for ${ref}\n`);
      fs.writeFileSync(path.join(tree, `${ref.slice(3)}.txt`), `${ref}\n`.repeat(100));
      const c = (await commit({ repo: server, branch: ref, source: tree, timestamp: (ts += 100) })).commit;
      signCommit({ repo: server, rev: ref, keyFile: keyFiles.secretFile });
      heads.set(ref, c);
      const set = new Set<ObjectKey>();
      markTrees(Repo.open(server), [c], set);
      needs.set(c, set);
    }
    updateSummary({ repo: server, signKeyFile: keyFiles.secretFile });
  });

  it(`${PULLS} pulls, seed ${SEED}: each completes correctly or fails clearly; nothing corrupt is stored; the ref never moves to an unverified commit`, async () => {
    console.info(`pull-faults: seed ${SEED} (rerun with STRATA_FAULT_SEED=${SEED})`);
    const rand = rng(SEED);
    const int = (n: number): number => Math.floor(rand() * n);
    let made = 0;
    const fresh = (i: number): string => {
      const mode = i % 2 ? 'bare-user' : 'archive';
      const repo = path.join(dir, `local-${i}-${mode}-${made++}`);
      Repo.init(repo, mode);
      addRemote({ repo, name: 'origin', url: 'http://127.0.0.1:9/', signVerify: i < 2 ? keyPub : undefined });
      return repo;
    };
    const locals = [0, 1, 2, 3].map(fresh);
    const seenFaults = new Map<Fault, number>();
    const outcomes = { ok: 0, failed: new Map<string, number>() };
    const started = Date.now();
    for (let n = 0; n < PULLS; n++) {
      // Per pull: how often requests misbehave, and which faults are in play.
      // The first pulls each serve one kind of fault early in the body, so every kind is met whatever the seed.
      const only = n < FAULTS.length ? FAULTS[n] : null;
      const rate = only ? 0.25 : [0.05, 0.12, 0.25][int(3)];
      let current: Fault | null = null;
      let at = 0;
      const srv = await serveRepo(server, {
        fail503: () => (current === '503' ? Number.MAX_SAFE_INTEGER : 0),
        status500: () => current === '500',
        cutAfter: () => (current === 'cut' ? at : null),
        stall: () => (current === 'stall' ? at : null),
        truncate: () => (current === 'truncate' ? at : null),
        corrupt: () => current === 'corrupt',
      });
      // The first hook of every request draws its fault; the others read it.
      const draw = srv.behaviour.fail503!;
      srv.behaviour.fail503 = (url) => {
        current = rand() < rate ? only ?? FAULTS[int(FAULTS.length)] : null;
        // Somewhere in a small object, or anywhere in the large one.
        at = only ? int(16) : rand() < 0.6 ? int(300) : int(1_400_000);
        return draw(url);
      };
      // Half the time a fresh repository (a whole pull), else one pulled into before (an update, a resume).
      const slot = int(locals.length);
      if (rand() < 0.5) locals[slot] = fresh(slot);
      const repoPath = locals[slot];
      const t0 = Date.now();
      const ref = [...heads.keys()][int(heads.size)];
      const expected = heads.get(ref)!;
      const before = readRef(Repo.open(repoPath), `origin:${ref}`);
      const config = path.join(repoPath, 'config');
      fs.writeFileSync(config, fs.readFileSync(config, 'utf8').replace(/url=.*/, `url=${srv.url}`));
      const retries = [1, 2, 3, 5][int(4)];
      let error: unknown = null;
      try {
        // Objects are staged by the worker, by this thread, or by either as the backlog goes.
        const inlineBacklog = [0, 2, Infinity][int(3)];
        const r = await pull({ repo: repoPath, remote: 'origin', rev: ref, retries, timeoutMs: TIMEOUT_MS, jobs: 1 + int(8), inlineBacklog });
        expect(r.commit).toBe(expected);
      } catch (err) {
        error = err;
      } finally {
        await srv.close();
      }
      for (const l of srv.log) if (l.fault) seenFaults.set(l.fault, (seenFaults.get(l.fault) ?? 0) + 1);
      const repo = Repo.open(repoPath);
      const what = `pull ${n} (seed ${SEED}) of ${ref} into ${path.basename(repoPath)}: ${error ? String(error) : 'ok'}`;
      if (process.env.STRATA_FAULT_VERBOSE) console.info(`${what} in ${Date.now() - t0} ms; faults ${srv.log.filter((l) => l.fault).map((l) => `${l.fault}@${l.url}`).join(' ')}`);
      if (error === null) {
        outcomes.ok++;
        expect(readRef(repo, `origin:${ref}`), what).toBe(expected);
        const have = new Set(listObjects(repo).map((o) => `${o.checksum}.${o.type}`));
        expect([...needs.get(expected)!].filter((k) => !have.has(k)), what).toEqual([]);
        expect(fs.existsSync(pullStagingDir(repo, 'origin')), what).toBe(false);
      } else {
        expect(error, what).toBeInstanceOf(StrataError);
        const e = error as StrataError;
        expect(EXPECTED_FAILURES, what).toContain(e.code);
        expect(e.message, what).not.toContain('\n');
        expect(e.message.length, what).toBeLessThan(400);
        outcomes.failed.set(e.code, (outcomes.failed.get(e.code) ?? 0) + 1);
        expect(readRef(repo, `origin:${ref}`), what).toBe(before);
      }
      expect(corruptObjects(repoPath), what).toEqual([]);
      // Every ref names a commit that is here and verified: the server's head for that ref.
      for (const { name, checksum } of listRefs(repo)) {
        expect(checksum, `${what}: ref ${name}`).toBe(heads.get(name.replace(/^origin:/, '')));
        expect(repo.hasObject(checksum, 'commit'), `${what}: ref ${name}`).toBe(true);
      }
      expect((await fsck({ repo: repoPath })).problems, what).toEqual([]);
    }
    console.info(
      `pull-faults: seed ${SEED}: ${outcomes.ok} of ${PULLS} pulls completed, failures ${JSON.stringify(Object.fromEntries(outcomes.failed))}, faults served ${JSON.stringify(Object.fromEntries(seenFaults))}, ${Date.now() - started} ms`,
    );
    // The storm really happened: every kind of fault was served.
    for (const f of FAULTS) expect(seenFaults.get(f) ?? 0, `fault ${f} never served (seed ${SEED})`).toBeGreaterThan(0);
  }, 120_000);

});
