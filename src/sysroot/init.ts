// `admin init-fs` and `admin os-init`: an empty sysroot in OSTree's layout,
// and a stateroot (its deploy/ directory and its one /var) inside it.

import fs from 'node:fs';
import path from 'node:path';
import { ioError } from '../errors.js';
import { Repo } from '../repo/repo.js';
import { replaceSymlink } from './boot-config.js';
import { Sysroot, validateStateroot } from './sysroot.js';

/** Top-level directories of a sysroot, with their modes (as `ostree admin init-fs` makes them). */
const TOP_DIRS: [string, number][] = [
  ['boot', 0o755], ['dev', 0o755], ['home', 0o755], ['proc', 0o755], ['root', 0o700],
  ['run', 0o755], ['sys', 0o755], ['tmp', 0o1777], ['ostree', 0o755], ['ostree/deploy', 0o755],
];

export function initFs(opts: { dir: string }): { sysroot: string; created: boolean } {
  const root = path.resolve(opts.dir);
  const existed = fs.existsSync(path.join(root, 'ostree/repo/config'));
  try {
    for (const [d, mode] of TOP_DIRS) {
      const p = path.join(root, d);
      if (!fs.existsSync(p)) {
        fs.mkdirSync(p, { recursive: true, mode });
        fs.chmodSync(p, mode); // mkdir's mode passes through the umask
      }
    }
    Repo.init(path.join(root, 'ostree/repo'), 'bare-user');
    // boot/loader is a symlink from the start, so every later switch is a rename.
    const loader = path.join(root, 'boot/loader');
    if (!fs.existsSync(loader)) {
      fs.mkdirSync(path.join(root, 'boot/loader.0/entries'), { recursive: true, mode: 0o755 });
      replaceSymlink('loader.0', loader);
    }
  } catch (err) {
    throw ioError(err, 'create a sysroot in', root);
  }
  return { sysroot: root, created: !existed };
}

export function osInit(opts: { sysroot: string; stateroot: string }): { stateroot: string; path: string; created: boolean } {
  validateStateroot(opts.stateroot);
  const sysroot = Sysroot.open(opts.sysroot);
  const dir = sysroot.staterootDir(opts.stateroot);
  const created = !fs.existsSync(path.join(dir, 'deploy'));
  try {
    fs.mkdirSync(path.join(dir, 'deploy'), { recursive: true, mode: 0o755 });
    for (const [d, mode] of [['var', 0o755], ['var/tmp', 0o1777], ['var/lib', 0o755], ['var/log', 0o755]] as const) {
      const p = path.join(dir, d);
      if (!fs.existsSync(p)) {
        fs.mkdirSync(p, { mode });
        fs.chmodSync(p, mode);
      }
    }
  } catch (err) {
    throw ioError(err, 'create stateroot', dir);
  }
  return { stateroot: opts.stateroot, path: dir, created };
}
