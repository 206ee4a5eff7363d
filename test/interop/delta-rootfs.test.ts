// Static deltas on the real Debian pair (make-rootfs.sh: rootfs-a, then
// rootfs-b = a upgraded plus packages): strata's delta must be smaller than
// the one `ostree static-delta generate` makes for the same two commits
// (parts plus fallback objects, as `ostree static-delta show` totals them),
// and applying it to a bare-user repository holding A must give B exactly.
// Both generation times are printed; decision 0007 records measured ones.

import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { ostree, rootfsPair, strata, tmpDir } from '../helpers/fixtures.js';
import type { Checksum } from '../../src/core/objects.js';
import { applyDelta, localFetch } from '../../src/remote/delta-apply.js';

const hasOstree = spawnSync('ostree', ['--version']).status === 0;
const pair = hasOstree ? rootfsPair() : null;

function ok(r: { status: number | null; stderr: string; stdout: string }, what: string): string {
  if (r.status !== 0) throw new Error(`${what} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

describe.skipIf(!pair)('static delta of the real rootfs pair', () => {
  let work: string;
  let repo: string;
  let A: Checksum;
  let B: Checksum;

  beforeAll(() => {
    if (!pair) return;
    work = tmpDir('strata-delta-rootfs-');
    repo = path.join(work, 'repo');
    ok(strata(['init', '--repo', repo, '--mode', 'archive']), 'init');
    A = strata(['commit', '--repo', repo, '-b', 'os', '--timestamp', '1700000000', '--json', pair.a]).json<{ commit: Checksum }>().commit;
    B = strata(['commit', '--repo', repo, '-b', 'os', '--timestamp', '1700000100', '--json', pair.b]).json<{ commit: Checksum }>().commit;
  });

  it('is smaller than ostree\'s delta, and applies to give B exactly', async () => {
    const oursStart = Date.now();
    const ours = JSON.parse(ok(strata(['static-delta', 'generate', '--repo', repo, '--from', A, '--to', B, '--json']), 'generate')) as { size: number; patched: number };
    const oursSeconds = (Date.now() - oursStart) / 1000;

    const orepo = path.join(work, 'ostree');
    ok(ostree(['init', `--repo=${orepo}`, '--mode=archive']), 'ostree init');
    ok(ostree(['pull-local', `--repo=${orepo}`, repo, 'os', '--depth=1']), 'pull-local');
    const theirsStart = Date.now();
    ok(ostree(['static-delta', 'generate', `--repo=${orepo}`, '--from', A, '--to', B]), 'ostree static-delta generate');
    const theirsSeconds = (Date.now() - theirsStart) / 1000;
    const show = ok(ostree(['static-delta', 'show', `--repo=${orepo}`, `${A}-${B}`]), 'ostree static-delta show');
    const theirs = Number(/Total Size: (\d+)/.exec(show)?.[1]);
    console.log(`rootfs-a -> rootfs-b: strata ${ours.size} bytes in ${oursSeconds.toFixed(1)} s (${ours.patched} patches); ostree ${theirs} bytes in ${theirsSeconds.toFixed(1)} s`);
    expect(theirs).toBeGreaterThan(0);
    expect(ours.size).toBeLessThan(theirs);
    expect(ours.patched).toBeGreaterThan(100);

    const client = path.join(work, 'client');
    ok(ostree(['init', `--repo=${client}`, '--mode=bare-user']), 'ostree init');
    ok(ostree(['pull-local', `--repo=${client}`, repo, A]), 'pull-local A');
    const r = await applyDelta({ repo: client, fetch: localFetch(repo), from: A, to: B });
    expect(r.commit).toBe(B);
    ok(ostree(['refs', `--repo=${client}`, `--create=os`, B]), 'ostree refs --create');
    ok(strata(['fsck', '--repo', client]), 'strata fsck');
    ok(ostree(['fsck', `--repo=${client}`]), 'ostree fsck');
    expect(fs.readdirSync(path.join(client, 'tmp')).filter((n) => n.startsWith('staging-'))).toEqual([]);
  }, 600_000);
});
