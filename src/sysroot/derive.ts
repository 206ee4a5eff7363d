// Derived deployments: a base commit plus what the device asked for on top
// of it (layered .deb packages, base paths hidden, or the tree a transaction
// left), committed client-side into the sysroot repository without a ref,
// and recorded in the new deployment's origin so that `admin upgrade` can
// build the same thing again on the next base. install, uninstall,
// override, transaction and upgrade all go through deployDerived.
//
// The tree is built as compose builds one (decision 0009): the base is
// checked out by copy and turned back into the plain layout (/etc, /var),
// packages are unpacked by the compose code (applyDeb), the OSTree layout is
// put back (assemble), removals apply to the committed layout. The sysroot
// imports compose's tree code here, never the other way round.

import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { StrataError } from '../errors.js';
import { type Checksum, metadataLookup } from '../core/objects.js';
import { commit } from '../repo/commit.js';
import { checkout } from '../repo/checkout.js';
import { writeFileAtomic } from '../repo/repo.js';
import { pidAlive } from '../repo/transaction.js';
import { assemble, checkSpecialFiles, unassemble } from '../compose/assemble.js';
import { type DebInfo, type DebLayerState, applyDeb, packagesInStatus } from '../compose/deb.js';
import { StagingTree, treeParts } from '../compose/tree.js';
import { type DeployResult, applyDeploy, planDeploy } from './deploy.js';
import { type Deployment, type Origin, Sysroot, originRefspec } from './sysroot.js';

export interface LayeredPackage {
  /** The Debian package name (from its control file). */
  name: string;
  /** sha256 of the .deb; the stored copy is `<sha256>.deb` in the stateroot's package store. */
  sha256: string;
}

/** What a deployment has on top of its base, as its origin records it. */
export interface Layering {
  packages: LayeredPackage[];
  /** Base paths hidden (`admin override remove`), as the commit has them (`/usr/etc/x`, not `/etc/x`). */
  removals: string[];
  /** The command of the `admin transaction` that made the tree, if one did (JSON array text). */
  transaction: string | null;
}

export const NO_LAYERING: Layering = { packages: [], removals: [], transaction: null };

/** Reads `[packages] requested-local`, `[overrides] remove` and `[strata] transaction` of an origin. */
export function layeringOf(origin: Origin): Layering {
  const list = (v: string | undefined): string[] => (v ?? '').split(';').map((x) => x.trim()).filter(Boolean);
  const packages = list(origin.get('packages')?.get('requested-local')).flatMap((item) => {
    const m = /^([0-9a-f]{64}):(.+)$/.exec(item);
    return m ? [{ sha256: m[1], name: m[2] }] : [];
  });
  return { packages, removals: list(origin.get('overrides')?.get('remove')), transaction: origin.get('strata')?.get('transaction') ?? null };
}

/** The origin sections that record a layering (none for a plain base). */
export function layeringSections(l: Layering): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  if (l.packages.length) out.packages = { 'requested-local': l.packages.map((p) => `${p.sha256}:${p.name};`).join('') };
  if (l.removals.length) out.overrides = { remove: l.removals.map((p) => `${p};`).join('') };
  if (l.transaction) out.strata = { transaction: l.transaction };
  return out;
}

export function isLayered(l: Layering): boolean {
  return l.packages.length > 0 || l.removals.length > 0 || l.transaction !== null;
}

/** The base commit a deployment was derived from (`strata.layer.base`), or its own commit. */
export function layerBase(sysroot: Sysroot, commit: Checksum): Checksum {
  try {
    const v = metadataLookup(sysroot.repo().loadCommit(commit).metadata, 'strata.layer.base');
    return typeof v === 'string' && /^[0-9a-f]{64}$/.test(v) ? (v as Checksum) : commit;
  } catch {
    return commit;
  }
}

/** Where a stateroot keeps the .deb files its deployments layer: its /var/lib/strata/layered. */
export function packageStore(sysroot: Sysroot, stateroot: string): string {
  return path.join(sysroot.staterootDir(stateroot), 'var/lib/strata/layered');
}

export function storedDeb(sysroot: Sysroot, stateroot: string, sha256: string): string {
  return path.join(packageStore(sysroot, stateroot), `${sha256}.deb`);
}

/** Normalizes a removal path to the commit's layout: absolute, /etc as /usr/etc. */
export function normalizeRemoval(p: string): string {
  const parts = treeParts(p);
  if (parts.length === 0) throw new StrataError('USAGE', 'cannot remove the root directory', { path: p });
  if (parts[0] === 'etc') parts.unshift('usr');
  return '/' + parts.join('/');
}

const WORK_PREFIX = 'strata-derive-';

/** A scratch directory in the sysroot repo's tmp/ (same filesystem); leftovers of dead processes go first. */
export function makeWorkDir(sysroot: Sysroot): string {
  const tmp = path.join(sysroot.repoPath, 'tmp');
  fs.mkdirSync(tmp, { recursive: true });
  for (const name of fs.readdirSync(tmp)) {
    if (!name.startsWith(WORK_PREFIX)) continue;
    const pid = Number(name.slice(WORK_PREFIX.length).split('-')[0]);
    if (!pidAlive(pid)) fs.rmSync(path.join(tmp, name), { recursive: true, force: true });
  }
  return fs.mkdtempSync(path.join(tmp, `${WORK_PREFIX}${process.pid}-`));
}

export interface DerivedBuild {
  commit: Checksum;
  packages: Omit<DebInfo, 'file'>[];
  /** Removals whose path this base does not have (an upgrade's base dropped it): skipped. */
  removalsMissing: string[];
}

/** What a replaced entry was, to tell an identical package file from a conflicting one. */
function signature(real: string): string {
  const st = fs.lstatSync(real);
  if (st.isSymbolicLink()) return `l ${fs.readlinkSync(real)}`;
  if (st.isFile()) return `f ${(st.mode & 0o7777).toString(8)} ${createHash('sha256').update(fs.readFileSync(real)).digest('hex')}`;
  return `other ${st.mode & 0o170000}`;
}

/** The commit metadata a derived commit carries: the base's string metadata plus what was layered. */
function derivedMetadata(sysroot: Sysroot, base: Checksum, layering: Layering, packages: Omit<DebInfo, 'file'>[]): [string, string][] {
  const meta = new Map<string, string>();
  for (const [k, v] of sysroot.repo().loadCommit(base).metadata) {
    if (k.startsWith('ostree.') || k.startsWith('strata.layer.') || k === 'strata.transaction') continue;
    if (v.type === 's' && typeof v.value === 'string') meta.set(k, v.value);
  }
  meta.set('strata.layer.base', base);
  if (packages.length) meta.set('strata.layer.packages', packages.map((p) => `${p.package}=${p.version}`).join(';'));
  if (layering.removals.length) meta.set('strata.layer.removed', layering.removals.join(';'));
  if (layering.transaction) meta.set('strata.transaction', layering.transaction);
  return [...meta].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Builds and commits base + layering. `files` maps a package's sha256 to a
 * .deb not stored yet; the others come from the package store. `tree`, when
 * given, is a tree in the plain layout (a transaction's result) that is
 * committed as it is instead of a checkout of the base. Nothing reaches the
 * repository before every package is unpacked and checked.
 */
export async function buildDerived(sysroot: Sysroot, opts: { base: Checksum; stateroot: string; layering: Layering; files?: Map<string, string>; tree?: string; work: string }): Promise<DerivedBuild> {
  const { base, layering, work } = opts;
  const repo = sysroot.repo();
  const root = opts.tree ?? path.join(work, 'tree');
  const packages: Omit<DebInfo, 'file'>[] = [];
  const removalsMissing: string[] = [];
  const tree = new StagingTree(root);
  if (!opts.tree) {
    // Copies, never hardlinks: the tree is edited and must not touch the repository's objects.
    await checkout({ repo: sysroot.repoPath, rev: base, dest: root, copy: true });
    unassemble(tree);
    const inBase = new Set(packagesInStatus(tree.readFile(['var', 'lib', 'dpkg', 'status'])?.toString('utf8') ?? '').map((p) => p.package));
    const replaced: { pkg: string; path: string; real: string; was: string }[] = [];
    const state: DebLayerState = {
      owners: new Map(),
      work,
      onReplace: (pkg, p, real) => replaced.push({ pkg, path: p, real, was: signature(real) }),
    };
    for (const p of layering.packages) {
      if (inBase.has(p.name)) {
        throw new StrataError('PACKAGE_CONFLICT', `package ${p.name} is already in the base image ${base.slice(0, 12)}; uninstall the layered one ('strata admin uninstall ${p.name}')`, { package: p.name, base });
      }
      const file = opts.files?.get(p.sha256) ?? storedDeb(sysroot, opts.stateroot, p.sha256);
      const info = await applyDeb(tree, file, state);
      packages.push({ package: info.package, version: info.version, architecture: info.architecture, files: info.files });
    }
    for (const r of replaced) {
      let now: string;
      try {
        now = signature(r.real);
      } catch {
        now = 'gone';
      }
      if (now !== r.was) {
        throw new StrataError('PACKAGE_CONFLICT', `package ${r.pkg} ships ${r.path}, which the base image ${base.slice(0, 12)} has with other content; nothing was deployed`, { package: r.pkg, path: r.path, base });
      }
    }
  }
  checkSpecialFiles(root);
  assemble(tree);
  // A given tree was made from a deployment that had the removals applied already.
  if (!opts.tree) for (const p of layering.removals) if (!tree.remove(treeParts(p))) removalsMissing.push(p);
  const c = repo.loadCommit(base);
  const r = await commit({
    repo: sysroot.repoPath,
    branch: 'strata/layered',
    writeRef: false,
    bindings: false,
    parent: base,
    source: root,
    subject: c.subject,
    body: c.body,
    timestamp: c.timestamp,
    metadata: derivedMetadata(sysroot, base, layering, packages),
  });
  return { commit: r.commit, packages, removalsMissing };
}

/** What a derived deployment starts from: a deployment, or the staged one. */
export interface StartingPoint {
  stateroot: string;
  checksum: Checksum;
  origin: Origin;
  kargs: string[];
}

export interface DerivedDeployOptions {
  /** The deployment whose stateroot, origin refspec and kernel arguments the new one takes. */
  from: StartingPoint;
  base: Checksum;
  layering: Layering;
  /** .deb files to store: sha256 → path. */
  files?: Map<string, string>;
  /** A prepared tree (transaction) in the plain layout. */
  tree?: string;
  work: string;
  stage?: boolean;
  booted?: string;
  /** The refspec to record (default: the one `from` follows). */
  refspec?: string;
}

export interface DerivedDeployResult {
  deploy: DeployResult;
  /** The deployed commit: the derived one, or the base itself when nothing is layered. */
  commit: Checksum;
  base: Checksum;
  build: DerivedBuild | null;
}

/** Builds (when anything is layered), stores new .deb files, deploys; the caller holds the sysroot lock. */
export async function deployDerived(sysroot: Sysroot, o: DerivedDeployOptions): Promise<DerivedDeployResult> {
  const build = isLayered(o.layering) || o.tree ? await buildDerived(sysroot, { base: o.base, stateroot: o.from.stateroot, layering: o.layering, files: o.files, tree: o.tree, work: o.work }) : null;
  const rev = build?.commit ?? o.base;
  const stored: string[] = [];
  try {
    for (const p of o.layering.packages) {
      const src = o.files?.get(p.sha256);
      const dest = storedDeb(sysroot, o.from.stateroot, p.sha256);
      if (!src || fs.existsSync(dest)) continue;
      fs.mkdirSync(path.dirname(dest), { recursive: true, mode: 0o755 });
      writeFileAtomic(dest, fs.readFileSync(src), 0o644, path.dirname(dest), false);
      stored.push(dest);
    }
    const opts = {
      sysroot: sysroot.path,
      booted: o.booted,
      rev,
      stateroot: o.from.stateroot,
      refspec: o.refspec ?? originRefspec(o.from.origin) ?? o.base,
      stage: o.stage,
      kargsReplaceAll: o.from.kargs,
      originSections: layeringSections(o.layering),
    };
    const deploy = await applyDeploy(sysroot, planDeploy(sysroot, opts), opts);
    removeUnusedPackages(sysroot, o.from.stateroot);
    return { deploy, commit: rev, base: o.base, build };
  } catch (err) {
    for (const f of stored) fs.rmSync(f, { force: true });
    throw err;
  }
}

/** Deletes stored .deb files that no deployment's origin (staged one included) asks for any more. */
export function removeUnusedPackages(sysroot: Sysroot, stateroot: string): string[] {
  const dir = packageStore(sysroot, stateroot);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const list = sysroot.deployments();
  const staged = sysroot.staged(list);
  const used = new Set<string>();
  for (const origin of [...list.map((d) => d.origin), ...(staged ? [sysroot.readOrigin(staged)] : [])]) {
    for (const p of layeringOf(origin).packages) used.add(`${p.sha256}.deb`);
  }
  const removed: string[] = [];
  for (const n of names) {
    if (/^[0-9a-f]{64}\.deb$/.test(n) && !used.has(n)) {
      fs.rmSync(path.join(dir, n), { force: true });
      removed.push(n);
    }
  }
  return removed;
}

/**
 * What layering commands build on, as rpm-ostree does: the pending state
 * (the staged deployment, else the default one), so that two installs in a
 * row keep both packages. With nothing pending that is the booted deployment.
 */
export function startingPoint(sysroot: Sysroot): StartingPoint {
  const list = sysroot.deployments();
  const staged = sysroot.staged(list);
  if (staged) return { stateroot: staged.stateroot, checksum: staged.checksum, origin: sysroot.readOrigin(staged), kargs: staged.kargs };
  const d: Deployment | undefined = list[0];
  if (!d) throw new StrataError('DEPLOYMENT_NOT_FOUND', `sysroot ${sysroot.path} has no deployment yet; deploy one with 'strata admin deploy REF'`, {});
  return { stateroot: d.stateroot, checksum: d.checksum, origin: d.origin, kargs: d.kargs };
}
