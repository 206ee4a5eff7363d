// A sysroot laid out as OSTree lays one out (docs/deployment.md):
//   ostree/repo                                  bare-user repository
//   ostree/deploy/<stateroot>/deploy/<csum>.<serial>[.origin]
//   ostree/deploy/<stateroot>/var                one /var per stateroot
//   ostree/boot.<B> -> boot.<B>.0/<stateroot>/<bootcsum>/<bootserial> -> deployment
//   boot/loader -> loader.<B>/entries/*.conf     Boot Loader Specification entries
// The entries of the current loader directory are the one source of truth
// for which deployments exist and in what order: swapping `boot/loader`
// changes everything at once.

import fs from 'node:fs';
import path from 'node:path';
import { StrataError, ioError } from '../errors.js';
import { type Checksum } from '../core/objects.js';
import { Repo, parseIni, writeFileAtomic } from '../repo/repo.js';
import { acquirePidLock } from '../repo/transaction.js';
import { type BootEntry, entryField, parseEntry, parseEntryName } from './bls.js';
import { splitKargs } from './kargs.js';

/** What a boot entry says about a deployment: enough to write the entry again. */
export interface BootSpec {
  stateroot: string;
  checksum: Checksum;
  serial: number;
  bootcsum: string;
  /** Kernel arguments, without `ostree=`. */
  kargs: string[];
  /** Kernel and initramfs paths relative to /boot. */
  linux: string;
  initrd?: string;
  /** The entry title without strata's `(strata:…)` suffix. */
  titleBase: string;
  /** Boot-assessment counter; undefined when the entry is not counted. */
  triesLeft?: number;
  triesDone?: number;
}

export interface Deployment extends BootSpec {
  /** Position in the boot order: 0 is the default. */
  index: number;
  /** File name of the entry in loader/entries. */
  entryFile: string;
  origin: Origin;
}

export type Origin = Map<string, Map<string, string>>;

export interface DeploymentState {
  health?: HealthRecord;
  /** Set when the deployment failed its health checks until the bootloader fell back. */
  bad?: { at: string; reason: string };
  etc?: EtcSummary;
}

/** What the /etc merge of a deployment did: conflicts kept the admin's file. */
export interface EtcSummary {
  conflicts: { path: string; reason: string }[];
  kept: number;
  removed: number;
}

export interface HealthRecord {
  ok: boolean;
  at: string;
  failed: { name: string; reason: string }[];
  warnings: string[];
}

/** What `--stage` leaves for `admin finalize-staged`: a checked-out deployment not yet in the boot order. */
export interface StagedRecord extends BootSpec {
  /** Deployment whose /etc is merged at finalization (stateroot/csum.serial), if any. */
  mergeFrom?: string;
}

const STATEROOT_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

export function validateStateroot(name: string): void {
  if (!STATEROOT_RE.test(name) || name.length > 128) {
    throw new StrataError('INVALID_STATEROOT', `stateroot name '${name}' is not valid: use letters, digits, '_', '-' and '.', not starting with '.' or '-'`, { stateroot: name });
  }
}

export function deploymentName(d: { checksum: string; serial: number }): string {
  return `${d.checksum}.${d.serial}`;
}

export function deploymentId(d: { stateroot: string; checksum: string; serial: number }): string {
  return `${d.stateroot}/${deploymentName(d)}`;
}

export class Sysroot {
  readonly path: string;
  private repoCache: Repo | undefined;

  private constructor(root: string) {
    this.path = root;
  }

  static open(root: string): Sysroot {
    const abs = path.resolve(root);
    if (!fs.existsSync(path.join(abs, 'ostree/repo/config'))) {
      throw new StrataError('SYSROOT_NOT_FOUND', `${abs} is not a sysroot (no ostree/repo); create one with 'strata admin init-fs ${root}'`, { path: abs });
    }
    return new Sysroot(abs);
  }

  get repoPath(): string {
    return path.join(this.path, 'ostree/repo');
  }

  repo(): Repo {
    return (this.repoCache ??= Repo.open(this.repoPath));
  }

  /** Reads a key of the repo config's `[sysroot]` section. */
  config(key: string): string | undefined {
    return this.repo().config.get('sysroot')?.get(key);
  }

  get bootDir(): string {
    return path.join(this.path, 'boot');
  }

  staterootDir(stateroot: string): string {
    return path.join(this.path, 'ostree/deploy', stateroot);
  }

  deploymentDir(d: { stateroot: string; checksum: string; serial: number }): string {
    return path.join(this.staterootDir(d.stateroot), 'deploy', deploymentName(d));
  }

  originFile(d: { stateroot: string; checksum: string; serial: number }): string {
    return this.deploymentDir(d) + '.origin';
  }

  stateFile(d: { stateroot: string; checksum: string; serial: number }): string {
    return this.deploymentDir(d) + '.state.json';
  }

  get stagedFile(): string {
    return path.join(this.path, 'run/strata/staged-deployment.json');
  }

  requireStateroot(stateroot: string): void {
    validateStateroot(stateroot);
    if (!fs.existsSync(path.join(this.staterootDir(stateroot), 'deploy'))) {
      throw new StrataError('STATEROOT_NOT_FOUND', `stateroot '${stateroot}' does not exist in ${this.path}; create it with 'strata admin os-init ${stateroot}'`, { stateroot });
    }
  }

  staterootNames(): string[] {
    try {
      return fs.readdirSync(path.join(this.path, 'ostree/deploy')).filter((n) => STATEROOT_RE.test(n)).sort();
    } catch {
      return [];
    }
  }

  /** Takes the sysroot's writer lock; every change of deployments holds it. */
  lock(): () => void {
    return acquirePidLock(path.join(this.path, 'ostree/strata.lock'), (pid) =>
      new StrataError('SYSROOT_LOCKED', `sysroot ${this.path} is being changed by process ${Number.isNaN(pid) ? '?' : pid}; wait for it to finish`, { pid }));
  }

  /** 0 or 1: which of boot/loader.0 and boot/loader.1 is current. */
  bootversion(): number {
    try {
      const target = fs.readlinkSync(path.join(this.bootDir, 'loader'));
      const m = /^loader\.([01])$/.exec(target);
      if (!m) throw new StrataError('SYSROOT_NOT_FOUND', `${this.bootDir}/loader points to '${target}', not loader.0 or loader.1`, {});
      return Number(m[1]);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      if (err instanceof StrataError) throw err;
      throw ioError(err, 'read', path.join(this.bootDir, 'loader'));
    }
  }

  /** The deployments of the current boot configuration, default first. */
  deployments(): Deployment[] {
    const dir = path.join(this.bootDir, `loader.${this.bootversion()}`, 'entries');
    let files: string[];
    try {
      files = fs.readdirSync(dir).filter((f) => f.endsWith('.conf'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw ioError(err, 'read', dir);
    }
    const found: { d: Omit<Deployment, 'index'>; version: number }[] = [];
    for (const file of files) {
      const entry = parseEntry(fs.readFileSync(path.join(dir, file), 'utf8'));
      const d = this.deploymentOfEntry(file, entry);
      if (d) found.push({ d, version: Number(entryField(entry, 'version') ?? 0) });
    }
    found.sort((a, b) => b.version - a.version || (a.d.entryFile < b.d.entryFile ? -1 : 1));
    return found.map(({ d }, index) => ({ ...d, index }));
  }

  private deploymentOfEntry(file: string, entry: BootEntry): Omit<Deployment, 'index'> | null {
    const name = parseEntryName(file);
    const args = splitKargs(entryField(entry, 'options') ?? '');
    const ostreeArg = args.find((a) => a.startsWith('ostree='));
    if (!name || !ostreeArg) return null; // not one of ours
    const m = /^\/ostree\/boot\.[01]\/([^/]+)\/([0-9a-f]{64})\/(\d+)$/.exec(ostreeArg.slice('ostree='.length));
    if (!m) return null;
    let target: string;
    try {
      target = fs.readlinkSync(path.join(this.path, ostreeArg.slice('ostree='.length)));
    } catch {
      return null; // a dangling entry: nothing to boot
    }
    const t = /^\.\.\/\.\.\/\.\.\/deploy\/([^/]+)\/deploy\/([0-9a-f]{64})\.(\d+)$/.exec(target);
    if (!t || t[1] !== m[1]) return null;
    const ref = { stateroot: t[1], checksum: t[2] as Checksum, serial: Number(t[3]) };
    return {
      ...ref,
      bootcsum: m[2],
      kargs: args.filter((a) => a !== ostreeArg),
      linux: entryField(entry, 'linux') ?? '',
      initrd: entryField(entry, 'initrd'),
      titleBase: (entryField(entry, 'title') ?? '').replace(/ \(strata:[^)]*\)$/, ''),
      entryFile: file,
      triesLeft: name.triesLeft,
      triesDone: name.triesDone,
      origin: this.readOrigin(ref),
    };
  }

  readOrigin(d: { stateroot: string; checksum: string; serial: number }): Origin {
    try {
      return parseIni(fs.readFileSync(this.originFile(d), 'utf8'));
    } catch {
      return new Map();
    }
  }

  /** `sync: false` when a boot-configuration switch (which syncs the filesystem) follows before anything reads it. */
  writeOrigin(d: { stateroot: string; checksum: string; serial: number }, origin: Origin, sync = true): void {
    writeFileAtomic(this.originFile(d), formatIni(origin), 0o644, path.dirname(this.originFile(d)), sync);
  }

  readState(d: { stateroot: string; checksum: string; serial: number }): DeploymentState {
    try {
      return JSON.parse(fs.readFileSync(this.stateFile(d), 'utf8')) as DeploymentState;
    } catch {
      return {};
    }
  }

  updateState(d: { stateroot: string; checksum: string; serial: number }, change: (s: DeploymentState) => void, sync = true): void {
    const s = this.readState(d);
    change(s);
    writeFileAtomic(this.stateFile(d), JSON.stringify(s, null, 2) + '\n', 0o644, path.dirname(this.stateFile(d)), sync);
  }

  /** The staged deployment, if one waits for finalization and is not in the boot order yet. */
  staged(list = this.deployments()): StagedRecord | null {
    let rec: StagedRecord;
    try {
      rec = JSON.parse(fs.readFileSync(this.stagedFile, 'utf8')) as StagedRecord;
    } catch {
      return null;
    }
    if (!fs.existsSync(this.deploymentDir(rec))) return null;
    if (list.some((d) => deploymentId(d) === deploymentId(rec))) return null;
    return rec;
  }

  /**
   * The booted deployment. `booted` (tests, or a harness) names its directory,
   * or an `ostree=` path; otherwise, when the sysroot is `/`, the deployment
   * whose directory is the running root (the same inode, as prepare-root
   * bind-mounts it), else the one `/proc/cmdline`'s `ostree=` names.
   */
  booted(list: Deployment[], booted?: string): Deployment | null {
    let dir: string | undefined;
    if (booted) {
      const p = booted.startsWith('ostree=') ? booted.slice(7) : booted;
      const candidates = [path.join(this.path, p), path.resolve(p)];
      for (const c of candidates) {
        try {
          dir = fs.realpathSync(c);
          break;
        } catch {
          // try the next reading
        }
      }
      if (!dir) throw new StrataError('NOT_BOOTED', `--booted ${booted} names no deployment directory`, { booted });
    } else if (this.path === '/') {
      const root = fs.statSync('/');
      const same = list.find((d) => {
        const st = statOrNull(this.deploymentDir(d));
        return st && st.dev === root.dev && st.ino === root.ino;
      });
      if (same) return same;
      const arg = readCmdlineOstree();
      if (!arg) return null;
      try {
        dir = fs.realpathSync(arg);
      } catch {
        return null;
      }
    } else {
      return null;
    }
    const real = (d: Deployment): string => {
      try {
        return fs.realpathSync(this.deploymentDir(d));
      } catch {
        return '';
      }
    };
    const hit = list.find((d) => real(d) === dir);
    if (!hit && booted) throw new StrataError('NOT_BOOTED', `--booted ${booted} is not a deployment of ${this.path}`, { booted });
    return hit ?? null;
  }
}

function readCmdlineOstree(): string | undefined {
  try {
    return splitKargs(fs.readFileSync('/proc/cmdline', 'utf8').trim()).find((a) => a.startsWith('ostree='))?.slice(7);
  } catch {
    return undefined;
  }
}

export function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch {
    return null;
  }
}

export function formatIni(ini: Origin): string {
  const parts: string[] = [];
  for (const [section, keys] of ini) {
    if (keys.size === 0) continue;
    parts.push(`[${section}]\n` + [...keys].map(([k, v]) => `${k}=${v}\n`).join(''));
  }
  return parts.join('\n');
}

export function isPinned(origin: Origin): boolean {
  return origin.get('libostree-transient')?.get('pinned') === 'true';
}

/** The ref (or commit) a deployment follows, from its origin's `refspec`. */
export function originRefspec(origin: Origin): string | undefined {
  return origin.get('origin')?.get('refspec');
}
