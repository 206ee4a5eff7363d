// strata's summary against the real `ostree` (Debian's 2022.7): for the same
// repository, `strata summary -u` writes the bytes `ostree summary -u` writes
// (last-modified aside, which is the time of writing), including a static
// delta dictionary large enough to make GLib's hash table grow, and the same
// delta-indexes/ files; and ostree reads the summary strata writes.

import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { ostree, sh, strata, tmpDir } from '../helpers/fixtures.js';
import { parseSummary, updateSummary, viewSummary } from '../../src/remote/summary.js';

const hasOstree = spawnSync('ostree', ['--version']).status === 0;

function ok(r: ReturnType<typeof strata> | ReturnType<typeof ostree>, what: string): string {
  if (r.status !== 0) throw new Error(`${what} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** Every file under dir (relative path → bytes). */
function files(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  if (!fs.existsSync(dir)) return out;
  for (const rel of sh('find', [dir, '-type', 'f', '-printf', '%P\n']).split('\n').filter(Boolean)) out.set(rel, fs.readFileSync(path.join(dir, rel)));
  return out;
}

/**
 * Runs both tools' `summary -u` on two copies of one repository and returns
 * both summaries; strata writes with ostree's last-modified so the bytes can match.
 */
function summarizeBoth(repo: string): { ours: Buffer; theirs: Buffer; oursDir: string; theirsDir: string } {
  const base = tmpDir('strata-summary-pair-');
  const theirsDir = path.join(base, 'theirs');
  const oursDir = path.join(base, 'ours');
  sh('cp', ['-a', repo, theirsDir]);
  sh('cp', ['-a', repo, oursDir]);
  ok(ostree(['summary', '-u', `--repo=${theirsDir}`]), 'ostree summary -u');
  const theirs = fs.readFileSync(path.join(theirsDir, 'summary'));
  const lastModified = viewSummary(parseSummary(theirs)).lastModified as number;
  updateSummary({ repo: oursDir, lastModified });
  return { ours: fs.readFileSync(path.join(oursDir, 'summary')), theirs, oursDir, theirsDir };
}

describe.skipIf(!hasOstree)('summary: strata and ostree write the same bytes', () => {
  let repo: string;
  const commits: string[] = [];

  beforeAll(() => {
    const dir = tmpDir('strata-summary-interop-');
    repo = path.join(dir, 'repo');
    ok(strata(['init', '--repo', repo, '--mode', 'archive']), 'init');
    const tree = path.join(dir, 'tree');
    fs.mkdirSync(tree);
    for (let i = 1; i <= 6; i++) {
      fs.writeFileSync(path.join(tree, 'counter'), `${i}\n`);
      fs.writeFileSync(path.join(tree, `blob${i}`), Buffer.alloc(5000 + i, i));
      const extra = i % 2 === 0 ? ['--add-metadata-string', `version=${i}.0`] : [];
      commits.push(ok(strata(['commit', '--repo', repo, '-b', 'os/x86_64/stable', '--timestamp', `${1_700_000_000 + i}`, '-s', `c${i}`, ...extra, tree]), 'commit').trim());
    }
    ok(strata(['commit', '--repo', repo, '-b', 'os/x86_64/beta', '--timestamp', '1700000100', '--add-metadata-string', 'version=7-beta', tree]), 'commit beta');
    ok(strata(['commit', '--repo', repo, '-b', 'a-first', '--timestamp', '1700000200', tree]), 'commit a-first');
  });

  it('without deltas', () => {
    const { ours, theirs, oursDir, theirsDir } = summarizeBoth(repo);
    expect(ours.equals(theirs), 'summary bytes differ').toBe(true);
    // Both recorded core/indexed-deltas=true (ostree rewrites the whole config, so compare values).
    for (const d of [oursDir, theirsDir]) expect(ok(ostree(['config', `--repo=${d}`, 'get', 'core.indexed-deltas']), 'config get').trim()).toBe('true');
  });

  it('with eleven static deltas, and the same delta-indexes/', () => {
    const withDeltas = path.join(tmpDir('strata-summary-deltas-'), 'repo');
    sh('cp', ['-a', repo, withDeltas]);
    commits.forEach((c, i) => {
      ok(ostree(['static-delta', 'generate', `--repo=${withDeltas}`, '--empty', `--to=${c}`]), 'static-delta generate --empty');
      if (i > 0) ok(ostree(['static-delta', 'generate', `--repo=${withDeltas}`, `--from=${commits[i - 1]}`, `--to=${c}`]), 'static-delta generate');
    });
    const { ours, theirs, oursDir, theirsDir } = summarizeBoth(withDeltas);
    expect(Object.keys(viewSummary(parseSummary(ours)).staticDeltas)).toHaveLength(11);
    expect(ours.equals(theirs), 'summary bytes differ').toBe(true);
    const a = files(path.join(oursDir, 'delta-indexes'));
    const b = files(path.join(theirsDir, 'delta-indexes'));
    expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
    expect(a.size).toBe(6);
    for (const [rel, bytes] of b) expect(a.get(rel)?.equals(bytes), rel).toBe(true);
  });

  it('ostree reads the summary strata writes', () => {
    const copy = path.join(tmpDir('strata-summary-view-'), 'repo');
    sh('cp', ['-a', repo, copy]);
    ok(strata(['summary', '-u', '--repo', copy]), 'strata summary -u');
    const view = ok(ostree(['summary', '--view', `--repo=${copy}`]), 'ostree summary --view');
    expect(view).toContain('* os/x86_64/stable');
    expect(view).toContain(`      ${commits[5]}`);
    expect(view).toContain('Version (ostree.commit.version): 6.0');
    expect(view).toContain('Version (ostree.commit.version): 7-beta');
    expect(view).toContain('Repository Mode (ostree.summary.mode): archive-z2');
    expect(view.indexOf('* a-first')).toBeLessThan(view.indexOf('* os/x86_64/beta'));
  });
});
