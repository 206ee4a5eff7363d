// The real peer end to end: a repository made and summarized by `ostree`
// (init --mode=archive, commit, summary -u), served by Debian's nginx on
// 127.0.0.1, pulled by the `strata` command into both local modes; `strata
// fsck` and `ostree fsck` pass and the ref names ostree's commit.
//
// Signed: ostree signs its own commit and summary (`ostree sign --keys-file`,
// `ostree summary -u --keys-file`) with a key from `strata keygen`, and a
// strata remote that requires that key pulls through nginx. Debian's ostree
// 2022.7 is built without libsodium: it has no `--keys-file` and cannot make
// ed25519 signatures. There the test asserts exactly that (so on an ostree
// with ed25519 it turns into the real check), then checks the nearest thing
// this machine allows: the ostree-made commit and summary signed by strata,
// verified by strata through nginx.

import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, makeTree, ostree, runAsync, strata, tmpDir } from '../helpers/fixtures.js';
import { NGINX, startNginx, stop } from '../helpers/nginx.js';

const hasOstree = spawnSync('ostree', ['--version']).status === 0;
const signHelp = hasOstree ? spawnSync('ostree', ['sign', '--help'], { encoding: 'utf8' }).stdout : '';
/** Whether this ostree can make ed25519 signatures from a keys file. */
const ostreeSignsEd25519 = /--keys-file/.test(signHelp) && /sign-ed25519/.test(hasOstree ? spawnSync('ostree', ['--version'], { encoding: 'utf8' }).stdout : '');

function ok(r: { status: number | null; stderr: string; stdout: string }, what: string): string {
  if (r.status !== 0) throw new Error(`${what} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

const strataAsync = (args: string[]) => runAsync(process.execPath, [CLI, ...args]);

describe.skipIf(!hasOstree || !NGINX)('strata pulls an ostree-made repository served by nginx', () => {
  let work: string;
  let upstream: string;
  let head: string;
  let nginx: Awaited<ReturnType<typeof startNginx>>;

  beforeAll(async () => {
    work = tmpDir('strata-pull-nginx-');
    upstream = path.join(work, 'upstream');
    ok(ostree(['init', `--repo=${upstream}`, '--mode=archive']), 'ostree init');
    ok(ostree(['commit', `--repo=${upstream}`, '--branch=os/x86_64/stable', '--subject=by ostree', '--add-metadata-string=version=7', makeTree(path.join(work, 'tree'), 5)]), 'ostree commit');
    ok(ostree(['summary', '-u', `--repo=${upstream}`]), 'ostree summary -u');
    head = ok(ostree(['rev-parse', `--repo=${upstream}`, 'os/x86_64/stable']), 'rev-parse').trim();
    nginx = await startNginx(upstream);
  });
  afterAll(async () => {
    if (nginx) await stop(nginx.child);
  });

  async function strataPull(mode: 'archive' | 'bare-user', signVerify?: string): Promise<{ repo: string; result: { commit: string; verifiedBy: string | null; version: string | null } }> {
    const repo = path.join(tmpDir('strata-pull-nginx-local-'), 'repo');
    ok(strata(['init', '--repo', repo, '--mode', mode]), 'init');
    ok(strata(['remote', 'add', 'cdn', nginx.url, '--repo', repo, ...(signVerify ? ['--sign-verify', signVerify] : [])]), 'remote add');
    const out = ok(await strataAsync(['pull', 'cdn', 'os/x86_64/stable', '--repo', repo, '--json']), 'strata pull');
    return { repo, result: JSON.parse(out) };
  }

  async function checkPulled(repo: string): Promise<void> {
    expect(ok(strata(['rev-parse', '--repo', repo, 'cdn:os/x86_64/stable']), 'rev-parse').trim()).toBe(head);
    ok(await strataAsync(['fsck', '--repo', repo]), 'strata fsck');
    ok(await runAsync('ostree', ['fsck', `--repo=${repo}`]), 'ostree fsck');
    expect(ok(ostree(['cat', `--repo=${repo}`, head, '/etc/hostname']), 'ostree cat')).toBe('host-5\n');
  }

  it.each(['archive', 'bare-user'] as const)('`strata pull` into a %s repository: ostree\'s commit, strata fsck and ostree fsck clean', async (mode) => {
    const { repo, result } = await strataPull(mode);
    expect(result.commit).toBe(head);
    expect(result.version).toBe('7');
    expect(result.verifiedBy).toBeNull();
    await checkPulled(repo);
  });

  it(ostreeSignsEd25519 ? "ostree's own ed25519-signed commit and summary (ostree sign --keys-file) pull with verification" : 'this ostree cannot make ed25519 signatures (asserted); strata-signed ostree commit and summary verify through nginx', async () => {
    const key = path.join(work, ostreeSignsEd25519 ? 'ostree-key' : 'strata-key');
    ok(strata(['keygen', '--output', key]), 'keygen');
    const signed = path.join(work, 'signed');
    fs.cpSync(upstream, signed, { recursive: true });
    const s = await startNginx(signed);
    try {
      const sign = spawnSync('ostree', ['sign', `--repo=${signed}`, `--keys-file=${key}`, head], { encoding: 'utf8' });
      if (ostreeSignsEd25519) {
        ok(sign, 'ostree sign --keys-file');
        ok(ostree(['summary', '-u', `--repo=${signed}`, '--sign-type=ed25519', `--keys-file=${key}`]), 'ostree summary -u --keys-file');
      } else {
        // The real check cannot run here: say so precisely, so that an ostree with ed25519 makes this the real check.
        expect(sign.status).not.toBe(0);
        expect(sign.stderr).toMatch(/Unknown option --keys-file|signature type is not implemented/i);
        const byType = spawnSync('ostree', ['sign', `--repo=${signed}`, '--sign-type=ed25519', head, fs.readFileSync(key, 'utf8').trim()], { encoding: 'utf8' });
        expect(byType.status).not.toBe(0);
        expect(byType.stderr).toMatch(/signature type is not implemented/i);
        expect(fs.existsSync(path.join(signed, 'objects', head.slice(0, 2), `${head.slice(2)}.commitmeta`))).toBe(false);
        ok(strata(['sign', head, '--repo', signed, '--key', key]), 'strata sign');
        // The summary regenerated and signed by strata (ostree cannot sign it here either).
        ok(strata(['summary', '-u', '--repo', signed, '--sign-key', key]), 'strata summary -u --sign-key');
      }
      const repo = path.join(tmpDir('strata-pull-nginx-signed-'), 'repo');
      ok(strata(['init', '--repo', repo, '--mode', 'bare-user']), 'init');
      ok(strata(['remote', 'add', 'cdn', s.url, '--repo', repo, '--sign-verify', `${key}.pub`]), 'remote add');
      const out = ok(await strataAsync(['pull', 'cdn', 'os/x86_64/stable', '--repo', repo, '--json']), 'strata pull');
      const result = JSON.parse(out) as { commit: string; verifiedBy: string };
      expect(result.commit).toBe(head);
      expect(result.verifiedBy).toBe(fs.readFileSync(`${key}.pub`, 'utf8').trim());
      expect(ok(strata(['rev-parse', '--repo', repo, 'cdn:os/x86_64/stable']), 'rev-parse').trim()).toBe(head);
      ok(await strataAsync(['fsck', '--repo', repo]), 'strata fsck');
      ok(await runAsync('ostree', ['fsck', `--repo=${repo}`]), 'ostree fsck');
      // The wrong key is refused through the same server.
      const other = path.join(work, 'other-key');
      ok(strata(['keygen', '--output', other]), 'keygen other');
      const wrong = path.join(tmpDir('strata-pull-nginx-wrong-'), 'repo');
      ok(strata(['init', '--repo', wrong, '--mode', 'archive']), 'init');
      ok(strata(['remote', 'add', 'cdn', s.url, '--repo', wrong, '--sign-verify', `${other}.pub`]), 'remote add');
      const refused = await strataAsync(['pull', 'cdn', 'os/x86_64/stable', '--repo', wrong]);
      expect(refused.status).not.toBe(0);
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
      expect(refused.stderr).toMatch(/verif|signature/i);
    } finally {
      await stop(s.child);
    }
  });
});
