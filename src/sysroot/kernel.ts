// The kernel and initramfs of a tree, from `usr/lib/modules/<kver>/`
// (vmlinuz, initramfs.img), copied into `/boot/ostree/<stateroot>-<bootcsum>/`
// where the bootloader can read them. The boot checksum is the SHA-256 of the
// kernel followed by the initramfs, so deployments with the same kernel share
// one copy in /boot.

import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { StrataError, ioError } from '../errors.js';
import { fsyncDir } from '../repo/repo.js';

export interface KernelLayout {
  kver: string;
  kernel: string;
  initramfs?: string;
  bootcsum: string;
}

/** Finds the kernel in a checked-out tree. */
export function findKernel(root: string, commit: string): KernelLayout {
  const modules = path.join(root, 'usr/lib/modules');
  let kvers: string[] = [];
  try {
    kvers = fs.readdirSync(modules).filter((k) => isFile(path.join(modules, k, 'vmlinuz')));
  } catch {
    // no modules directory: no kernel
  }
  if (kvers.length === 0) {
    throw new StrataError('NO_KERNEL', `commit ${commit.slice(0, 12)} holds no kernel: a deployable tree needs usr/lib/modules/<kver>/vmlinuz (and usually initramfs.img)`, { commit });
  }
  if (kvers.length > 1) {
    throw new StrataError('TREE_LAYOUT', `commit ${commit.slice(0, 12)} holds several kernels (${kvers.sort().join(', ')}); a deployable tree has one`, { commit, kvers });
  }
  const kver = kvers[0];
  const kernel = path.join(modules, kver, 'vmlinuz');
  const initramfsPath = path.join(modules, kver, 'initramfs.img');
  const initramfs = isFile(initramfsPath) ? initramfsPath : undefined;
  const hash = createHash('sha256');
  for (const f of [kernel, initramfs]) if (f) hash.update(fs.readFileSync(f));
  return { kver, kernel, initramfs, bootcsum: hash.digest('hex') };
}

/**
 * Copies kernel and initramfs into /boot unless a deployment with the same
 * boot checksum already did; the directory appears whole (temp + rename).
 * Returns the BLS `linux` and `initrd` paths (relative to /boot) and the
 * topmost directory it created, if any (for undoing a failed deploy).
 */
export function installKernel(bootDir: string, stateroot: string, k: KernelLayout): { linux: string; initrd?: string; created: string | null } {
  const name = `${stateroot}-${k.bootcsum}`;
  const dir = path.join(bootDir, 'ostree', name);
  const linux = `/ostree/${name}/vmlinuz-${k.kver}`;
  const initrd = k.initramfs ? `/ostree/${name}/initramfs-${k.kver}.img` : undefined;
  if (fs.existsSync(dir)) return { linux, initrd, created: null };
  const tmp = path.join(bootDir, 'ostree', `.${name}.tmp-${process.pid}`);
  const parentMade = fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 });
  try {
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { mode: 0o755 });
    linkOrCopy(k.kernel, path.join(tmp, `vmlinuz-${k.kver}`));
    if (k.initramfs) linkOrCopy(k.initramfs, path.join(tmp, `initramfs-${k.kver}.img`));
    fs.renameSync(tmp, dir);
    fsyncDir(path.dirname(dir));
  } catch (err) {
    fs.rmSync(parentMade ?? tmp, { recursive: true, force: true });
    throw ioError(err, 'install the kernel into', dir);
  }
  return { linux, initrd, created: parentMade ?? dir };
}

/** /boot on the same filesystem shares the tree's inode (as ostree does); another filesystem gets a copy. */
function linkOrCopy(from: string, to: string): void {
  try {
    fs.linkSync(from, to);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw err;
    fs.copyFileSync(from, to);
  }
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}
