// Sysroot fixtures: small bootable OS trees (a kernel and initramfs under
// usr/lib/modules, default config in usr/etc, os-release) committed into a
// fresh sysroot's repo, and a helper that boots the sysroot through the
// bootloader model and returns the booted deployment directory.

import fs from 'node:fs';
import path from 'node:path';
import { commit } from '../../src/repo/commit.js';
import { initFs, osInit } from '../../src/sysroot/init.js';
import { boot } from './boot-model.js';
import { tmpDir } from './fixtures.js';

export const KVER = '6.1.0-strata-test';

export interface OsVersion {
  version: string;
  /** Default config: paths under usr/etc and their content. */
  etc?: Record<string, string>;
  /** Other files: path -> content (mode 0755 when the path is under a bin directory). */
  files?: Record<string, string>;
  /** Symlinks: path -> target. */
  links?: Record<string, string>;
  /** Kernel bytes (changing it changes the boot checksum). */
  kernel?: string;
}

export function writeOsTree(dir: string, v: OsVersion): void {
  const put = (rel: string, content: string, mode = 0o644): void => {
    const p = path.join(dir, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content, { mode });
    fs.chmodSync(p, mode);
  };
  put(`usr/lib/modules/${KVER}/vmlinuz`, v.kernel ?? 'kernel image 1\n');
  put(`usr/lib/modules/${KVER}/initramfs.img`, 'initramfs\n');
  put('usr/lib/os-release', `NAME="Strata Test OS"\nPRETTY_NAME="Strata Test OS"\nID=stratatest\nVERSION_ID=${v.version}\n`);
  const etc = { hostname: 'device\n', 'motd': `welcome to ${v.version}\n`, 'app/app.conf': 'level=1\n', ...v.etc };
  for (const [p, c] of Object.entries(etc)) put(`usr/etc/${p}`, c);
  put('usr/bin/hello', `#!/bin/sh\necho hello ${v.version}\n`, 0o755);
  fs.symlinkSync('hello', path.join(dir, 'usr/bin/hi'));
  for (const [p, c] of Object.entries(v.files ?? {})) put(p, c, /\/s?bin\/|\/health\.d\//.test(p) ? 0o755 : 0o644);
  for (const [p, t] of Object.entries(v.links ?? {})) {
    fs.mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
    fs.symlinkSync(t, path.join(dir, p));
  }
  fs.mkdirSync(path.join(dir, 'var'), { recursive: true });
}

export interface TestSysroot {
  dir: string;
  /** Commits a version of the OS to `ref` and returns its checksum. */
  commitVersion(v: OsVersion, ref?: string): Promise<string>;
}

export const STATEROOT = 'testos';
export const REF = 'testos/stable';

export function makeSysroot(opts: { tries?: number } = {}): TestSysroot {
  const dir = path.join(tmpDir('strata-sysroot-'), 'sysroot');
  initFs({ dir });
  osInit({ sysroot: dir, stateroot: STATEROOT });
  if (opts.tries) fs.appendFileSync(path.join(dir, 'ostree/repo/config'), `\n[sysroot]\nboot-counting-tries=${opts.tries}\n`);
  let n = 0;
  return {
    dir,
    async commitVersion(v, ref = REF) {
      const src = path.join(path.dirname(dir), `tree-${n++}`);
      writeOsTree(src, v);
      const r = await commit({ repo: path.join(dir, 'ostree/repo'), branch: ref, source: src, metadata: [['version', v.version]], timestamp: 1700000000 + n });
      fs.rmSync(src, { recursive: true, force: true });
      return r.commit;
    },
  };
}

/** One boot through the bootloader model; returns the booted deployment's directory. */
export function bootSysroot(sysroot: string): string {
  return fs.realpathSync(boot(sysroot).deployment);
}

/** Every path of a sysroot with its type, size and link target: equal snapshots mean nothing changed. */
export function snapshot(sysroot: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(dir, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      // The lock, the repo's scratch space, and its symlink cache (derived from objects, content-addressed).
      if (r === 'ostree/strata.lock' || r === 'ostree/repo/tmp' || r === 'ostree/repo/extensions/strata') continue;
      const st = fs.lstatSync(p);
      out.push(`${r} ${st.isDirectory() ? 'd' : st.isSymbolicLink() ? `l ${fs.readlinkSync(p)}` : `f ${st.size} ${(st.mode & 0o7777).toString(8)}`}`);
      if (st.isDirectory()) walk(p, r);
    }
  };
  walk(sysroot, '');
  return out;
}
