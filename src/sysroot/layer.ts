// `strata admin install / uninstall / override remove / override reset`:
// change what a deployment layers on top of its base, then deploy the
// result (deployDerived). Each command computes the new layering from the
// pending one (pure but for reading the .deb files), shows it with
// --dry-run, and otherwise builds and deploys it under the sysroot lock.

import fs from 'node:fs';
import { StrataError, isStrataError } from '../errors.js';
import type { Checksum } from '../core/objects.js';
import { readDebInfo } from '../compose/deb.js';
import { hashFile } from '../compose/file-hash.js';
import { resolveTreePath } from '../repo/walk.js';
import {
  type DerivedDeployResult, type Layering, type StartingPoint, deployDerived, layerBase, layeringOf, makeWorkDir, normalizeRemoval, startingPoint,
} from './derive.js';
import { Sysroot } from './sysroot.js';

interface LayerCommandOptions {
  sysroot: string;
  booted?: string;
  /** Stage the new deployment (the default); false makes it the default now. */
  stage?: boolean;
  dryRun?: boolean;
}

export interface LayerPlan {
  base: Checksum;
  before: Layering;
  after: Layering;
  added: string[];
  removed: string[];
  /** Set when the new tree drops a transaction's changes (rebuilt from the base). */
  dropsTransaction: string | null;
}

export interface LayerResult extends LayerPlan {
  dryRun: boolean;
  /** The deployed commit (null with dryRun). */
  commit: Checksum | null;
  deployment: DerivedDeployResult['deploy']['deployment'] | null;
  staged: boolean;
  packages: { package: string; version: string; architecture: string }[];
  warnings: string[];
}

function planFrom(sysroot: Sysroot, from: StartingPoint, change: (l: Layering) => Omit<LayerPlan, 'base' | 'before' | 'dropsTransaction'>): LayerPlan {
  const before = layeringOf(from.origin);
  const base = layerBase(sysroot, from.checksum);
  const r = change(before);
  return { base, before, ...r, dropsTransaction: before.transaction };
}

async function run(sysroot: Sysroot, opts: LayerCommandOptions, make: (from: StartingPoint, work: string) => Promise<{ plan: LayerPlan; files?: Map<string, string> }>): Promise<LayerResult> {
  const unlock = opts.dryRun ? () => undefined : sysroot.lock();
  const work = makeWorkDir(sysroot);
  try {
    const from = startingPoint(sysroot);
    const { plan, files } = await make(from, work);
    const warnings = plan.dropsTransaction ? [`the changes of transaction ${plan.dropsTransaction} are not carried over: the tree is rebuilt from the base`] : [];
    const result: LayerResult = { ...plan, dryRun: !!opts.dryRun, commit: null, deployment: null, staged: false, packages: [], warnings };
    if (opts.dryRun) return result;
    const d = await deployDerived(sysroot, { from, base: plan.base, layering: plan.after, files, work, stage: opts.stage ?? true, booted: opts.booted });
    for (const m of d.build?.removalsMissing ?? []) warnings.push(`${m} is not in the base; nothing to remove`);
    return { ...result, commit: d.commit, deployment: d.deploy.deployment, staged: d.deploy.staged, packages: (d.build?.packages ?? []).map(({ package: p, version, architecture }) => ({ package: p, version, architecture })) };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    unlock();
  }
}

/** `admin install PKG.deb...`: layer local packages (a package layered already is replaced by the new file). */
export async function installPackages(opts: LayerCommandOptions & { files: string[] }): Promise<LayerResult> {
  if (opts.files.length === 0) throw new StrataError('USAGE', 'admin install needs at least one .deb file');
  const sysroot = Sysroot.open(opts.sysroot);
  return run(sysroot, opts, async (from, work) => {
    const files = new Map<string, string>();
    const incoming: { name: string; sha256: string }[] = [];
    for (const f of opts.files) {
      if (!fs.existsSync(f)) throw new StrataError('SOURCE_NOT_FOUND', `${f} does not exist; give the path of a .deb file`, { path: f });
      const info = await readDebInfo(f, work);
      if (incoming.some((p) => p.name === info.package)) throw new StrataError('USAGE', `package ${info.package} is given twice`, { package: info.package });
      const sha256 = await hashFile(f);
      files.set(sha256, f);
      incoming.push({ name: info.package, sha256 });
    }
    const plan = planFrom(sysroot, from, (l) => ({
      after: { packages: [...l.packages.filter((p) => !incoming.some((i) => i.name === p.name)), ...incoming], removals: l.removals, transaction: null },
      added: incoming.map((p) => p.name),
      removed: [],
    }));
    return { plan, files };
  });
}

/** `admin uninstall NAME...`: drop layered packages; the tree is rebuilt from the base. */
export async function uninstallPackages(opts: LayerCommandOptions & { names: string[] }): Promise<LayerResult> {
  if (opts.names.length === 0) throw new StrataError('USAGE', 'admin uninstall needs at least one package name');
  const sysroot = Sysroot.open(opts.sysroot);
  return run(sysroot, opts, async (from) => {
    const plan = planFrom(sysroot, from, (l) => {
      for (const n of opts.names) {
        if (!l.packages.some((p) => p.name === n)) {
          const have = l.packages.length ? `layered: ${l.packages.map((p) => p.name).join(', ')}` : 'no packages are layered';
          throw new StrataError('PACKAGE_NOT_LAYERED', `package ${n} is not layered on this deployment (${have})`, { package: n });
        }
      }
      return { after: { packages: l.packages.filter((p) => !opts.names.includes(p.name)), removals: l.removals, transaction: null }, added: [], removed: [...opts.names] };
    });
    return { plan };
  });
}

/** `admin override remove PATH...`: hide base paths (files, symlinks or whole directories). */
export async function overrideRemove(opts: LayerCommandOptions & { paths: string[] }): Promise<LayerResult> {
  if (opts.paths.length === 0) throw new StrataError('USAGE', 'admin override remove needs at least one path');
  const sysroot = Sysroot.open(opts.sysroot);
  return run(sysroot, opts, async (from) => {
    const plan = planFrom(sysroot, from, (l) => {
      const wanted = opts.paths.map(normalizeRemoval);
      for (const p of wanted) {
        try {
          resolveTreePath(sysroot.repo(), layerBase(sysroot, from.checksum), p);
        } catch (err) {
          if (isStrataError(err, 'PATH_NOT_FOUND') || isStrataError(err, 'NOT_A_DIRECTORY')) {
            throw new StrataError('PATH_NOT_FOUND', `${p} is not in the base image; only base paths can be removed (see 'strata ls')`, { path: p });
          }
          throw err;
        }
      }
      const added = wanted.filter((p) => !l.removals.includes(p));
      return { after: { packages: l.packages, removals: [...l.removals, ...added], transaction: null }, added, removed: [] };
    });
    return { plan };
  });
}

/** `admin override reset`: every removed base path comes back (packages stay layered). */
export async function overrideReset(opts: LayerCommandOptions): Promise<LayerResult> {
  const sysroot = Sysroot.open(opts.sysroot);
  return run(sysroot, opts, async (from) => ({
    plan: planFrom(sysroot, from, (l) => ({ after: { packages: l.packages, removals: [], transaction: null }, added: [], removed: [...l.removals] })),
  }));
}
