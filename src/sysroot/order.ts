// Changing the boot order: every command that adds, removes or reorders
// deployments ends here. The new order is written and switched to in one
// step (boot-config.ts); what fell out of it is deleted afterwards, so a kill
// at any moment leaves at worst unreferenced directories for `admin cleanup`.

import fs from 'node:fs';
import path from 'node:path';
import { type BootDeployment, writeBootConfig } from './boot-config.js';
import { type BootSpec, type Sysroot, deploymentId } from './sysroot.js';

/** The entry-writing part of a deployment (a listed one, or the staged one). */
export function toBootDeployment(d: BootSpec): BootDeployment {
  const { stateroot, checksum, serial, bootcsum, kargs, linux, initrd, titleBase, triesLeft, triesDone } = d;
  return { stateroot, checksum, serial, bootcsum, kargs, linux, initrd, titleBase, triesLeft, triesDone };
}

/** Writes `order` as the boot configuration, then deletes what no longer belongs to the sysroot. */
export function switchOrder(sysroot: Sysroot, order: BootDeployment[]): CleanupResult {
  writeBootConfig(sysroot, order);
  return removeUnreferenced(sysroot);
}

export interface CleanupResult {
  /** Deployment directories removed (stateroot/checksum.serial, or leftover temp names). */
  deployments: string[];
  /** Kernel directories removed from /boot/ostree. */
  kernels: string[];
}

/**
 * Deletes every deployment directory, origin and state file that neither
 * the current boot order nor the staged record names (including what an
 * interrupted deploy left), and kernels in /boot no deployment uses.
 */
export function removeUnreferenced(sysroot: Sysroot): CleanupResult {
  const list = sysroot.deployments();
  const staged = sysroot.staged(list);
  const keep = new Set(list.map(deploymentId));
  const bootKeep = new Set(list.map((d) => `${d.stateroot}-${d.bootcsum}`));
  if (staged) {
    keep.add(deploymentId(staged));
    bootKeep.add(`${staged.stateroot}-${staged.bootcsum}`);
  }
  const result: CleanupResult = { deployments: [], kernels: [] };
  for (const stateroot of sysroot.staterootNames()) {
    const dir = path.join(sysroot.staterootDir(stateroot), 'deploy');
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    // Directories first, then their origin and state files: a kill in between
    // leaves an origin without a directory, which nothing reads.
    const isMeta = (n: string): boolean => n.endsWith('.origin') || n.endsWith('.state.json');
    names.sort((a, b) => Number(isMeta(a)) - Number(isMeta(b)));
    for (const name of names) {
      const base = name.replace(/\.origin$|\.state\.json$/, '');
      if (keep.has(`${stateroot}/${base}`)) continue;
      fs.rmSync(path.join(dir, name), { recursive: true, force: true });
      if (!isMeta(name)) result.deployments.push(`${stateroot}/${name}`);
    }
  }
  const kernels = path.join(sysroot.bootDir, 'ostree');
  let names: string[] = [];
  try {
    names = fs.readdirSync(kernels);
  } catch {
    // no kernels yet
  }
  for (const name of names) {
    if (bootKeep.has(name)) continue;
    fs.rmSync(path.join(kernels, name), { recursive: true, force: true });
    result.kernels.push(name);
  }
  return result;
}

export function describeDeployment(d: { stateroot: string; checksum: string; serial: number }): string {
  return `${d.stateroot}/${d.checksum.slice(0, 12)}.${d.serial}`;
}
