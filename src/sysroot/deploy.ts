// `strata admin deploy`: a commit becomes a bootable deployment. planDeploy
// reads the sysroot and decides (stateroot, serial, /etc merge source, kernel
// arguments, the new boot order and what retention drops); applyDeploy
// checks the tree out by hardlinks under a temp name, gives it a real /etc
// (merged), installs its kernel, renames it into place and switches the boot
// order in one step. With --stage the switch (and the /etc merge) waits for
// `admin finalize-staged` at shutdown.

import fs from 'node:fs';
import path from 'node:path';
import { StrataError, ioError, isStrataError } from '../errors.js';
import { type Checksum, metadataLookup } from '../core/objects.js';
import { type Repo, writeFileAtomic } from '../repo/repo.js';
import { resolveRev, validateRefName } from '../repo/refs.js';
import { resolveTreePath } from '../repo/walk.js';
import { checkout } from '../repo/checkout.js';
import { mergeEtc } from './etc-merge.js';
import { type KargEdits, editKargs } from './kargs.js';
import { findKernel, installKernel } from './kernel.js';
import { writeBootConfig } from './boot-config.js';
import { removeUnreferenced, toBootDeployment } from './order.js';
import {
  type Deployment, type EtcSummary, type Origin, type StagedRecord, Sysroot, deploymentId, isPinned, statOrNull,
} from './sysroot.js';

export interface DeployOptions {
  sysroot: string;
  /** Ref or commit of the sysroot's repo. */
  rev: string;
  stateroot?: string;
  /** Kernel argument edits applied to the merge deployment's arguments. */
  kargs?: KargEdits;
  /** Replace the inherited kernel arguments entirely. */
  kargsReplaceAll?: string[];
  stage?: boolean;
  notAsDefault?: boolean;
  /** Keep this many deployments beyond booted, default, rollback and pinned. */
  retain?: number;
  /** Boot-counting tries for the new default (overrides `[sysroot] boot-counting-tries`). */
  bootTries?: number;
  /** What the origin's refspec says (default: REV when it is a ref). */
  refspec?: string;
  /** Extra `[origin]` keys (e.g. layered packages). */
  originExtra?: Record<string, string>;
  /** Other origin sections, written after `[origin]` (layering: `[packages]`, `[overrides]`, `[strata]`). */
  originSections?: Record<string, Record<string, string>>;
  booted?: string;
  dryRun?: boolean;
}

export interface DeployPlan {
  stateroot: string;
  commit: Checksum;
  serial: number;
  version: string | null;
  refspec: string;
  kargs: string[];
  /** The deployment whose /etc is merged into the new one. */
  mergeFrom: Deployment | null;
  stage: boolean;
  triesLeft?: number;
  /** New boot order (ids, default first); 'new' marks the new deployment. */
  order: (Deployment | 'new')[];
  /** Deployments retention drops. */
  drop: Deployment[];
}

export interface DeployResult {
  deployment: { stateroot: string; checksum: Checksum; serial: number; index: number | null; version: string | null };
  staged: boolean;
  kargs: string[];
  etc: EtcSummary | null;
  removed: string[];
  dryRun: boolean;
}

export function resolveStateroot(sysroot: Sysroot, list: Deployment[], booted: Deployment | null, wanted?: string): string {
  if (wanted) {
    sysroot.requireStateroot(wanted);
    return wanted;
  }
  if (booted) return booted.stateroot;
  if (list.length) return list[0].stateroot;
  const names = sysroot.staterootNames();
  if (names.length === 1) return names[0];
  if (names.length === 0) throw new StrataError('STATEROOT_NOT_FOUND', `sysroot ${sysroot.path} has no stateroot; create one with 'strata admin os-init NAME'`, {});
  throw new StrataError('USAGE', `sysroot ${sysroot.path} has several stateroots (${names.join(', ')}); choose one with --os`, {});
}

/** Which deployments a new boot order keeps: booted, default, rollback, pinned, and `retain` more. */
export function applyRetention(order: (Deployment | 'new')[], booted: Deployment | null, retain: number): { keep: (Deployment | 'new')[]; drop: Deployment[] } {
  const keep: (Deployment | 'new')[] = [];
  const drop: Deployment[] = [];
  let extra = retain;
  let rollbackKept = false;
  for (const [i, d] of order.entries()) {
    const must = d === 'new' || i === 0 || (booted && deploymentId(d) === deploymentId(booted)) || isPinned(d.origin);
    // The first deployment after the default is the rollback target.
    if (must || !rollbackKept || extra > 0) {
      if (!must && rollbackKept) extra--;
      if (i > 0) rollbackKept = true;
      keep.push(d);
    } else {
      drop.push(d as Deployment);
    }
  }
  return { keep, drop };
}

export function planDeploy(sysroot: Sysroot, opts: DeployOptions): DeployPlan {
  const list = sysroot.deployments();
  const booted = sysroot.booted(list, opts.booted);
  const stateroot = resolveStateroot(sysroot, list, booted, opts.stateroot);
  const repo = sysroot.repo();
  const commit = resolveRev(repo, opts.rev);
  const c = repo.loadCommit(commit);
  const version = metadataLookup(c.metadata, 'version');
  const mergeFrom = booted?.stateroot === stateroot ? booted : list.find((d) => d.stateroot === stateroot) ?? null;
  const kargs = editKargs(opts.kargsReplaceAll ?? mergeFrom?.kargs ?? [], opts.kargs ?? {});
  const refspec = opts.refspec ?? (/^[0-9a-f]{64}$/.test(opts.rev) ? commit : opts.rev);
  if (refspec !== commit) validateRefName(refspec.includes(':') ? refspec.slice(refspec.indexOf(':') + 1) : refspec);
  const retain = opts.retain ?? 0;
  if (!Number.isInteger(retain) || retain < 0) throw new StrataError('USAGE', `--retain must be a whole number (got ${opts.retain})`);
  const tries = opts.bootTries ?? parseTries(sysroot.config('boot-counting-tries'));

  const order: (Deployment | 'new')[] = [...list];
  if (opts.notAsDefault) order.splice(Math.min(1, order.length), 0, 'new');
  else order.unshift('new');
  const { keep, drop } = opts.stage ? { keep: order, drop: [] } : applyRetention(order, booted, retain);
  return {
    stateroot,
    commit,
    serial: nextSerial(sysroot, stateroot, commit),
    version: typeof version === 'string' ? version : null,
    refspec,
    kargs,
    mergeFrom,
    stage: !!opts.stage,
    triesLeft: opts.notAsDefault || !tries ? undefined : tries,
    order: keep,
    drop,
  };
}

function parseTries(v: string | undefined): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 100) throw new StrataError('USAGE', `[sysroot] boot-counting-tries must be a whole number 0-100 (got '${v}')`);
  return n || undefined;
}

/** The lowest serial no deployment directory of this commit uses (leftovers included). */
function nextSerial(sysroot: Sysroot, stateroot: string, commit: Checksum): number {
  const used = new Set<number>();
  try {
    for (const n of fs.readdirSync(path.join(sysroot.staterootDir(stateroot), 'deploy'))) {
      const m = /^([0-9a-f]{64})\.(\d+)/.exec(n);
      if (m && m[1] === commit) used.add(Number(m[2]));
    }
  } catch {
    // empty stateroot
  }
  let s = 0;
  while (used.has(s)) s++;
  return s;
}

export async function deploy(opts: DeployOptions): Promise<DeployResult> {
  const sysroot = Sysroot.open(opts.sysroot);
  const unlock = opts.dryRun ? () => undefined : sysroot.lock();
  try {
    const plan = planDeploy(sysroot, opts);
    if (opts.dryRun) return resultOf(plan, null, [], true);
    return await applyDeploy(sysroot, plan, opts);
  } finally {
    unlock();
  }
}

function resultOf(plan: DeployPlan, etc: EtcSummary | null, removed: string[], dryRun: boolean): DeployResult {
  const index = plan.stage ? null : plan.order.indexOf('new');
  return {
    deployment: { stateroot: plan.stateroot, checksum: plan.commit, serial: plan.serial, index, version: plan.version },
    staged: plan.stage,
    kargs: plan.kargs,
    etc,
    removed,
    dryRun,
  };
}

export async function applyDeploy(sysroot: Sysroot, plan: DeployPlan, opts: DeployOptions): Promise<DeployResult> {
  const ref = { stateroot: plan.stateroot, checksum: plan.commit, serial: plan.serial };
  const final = sysroot.deploymentDir(ref);
  const work = `${final}.deploying-${process.pid}`;
  let kernelDir: string | null = null;
  let etc: EtcSummary | null = null;
  let record: StagedRecord;
  try {
    fs.rmSync(work, { recursive: true, force: true });
    const repo = sysroot.repo();
    const config = configSubpath(repo, plan.commit);
    await checkout({ repo: sysroot.repoPath, rev: plan.commit, dest: work });
    const kernel = findKernel(work, plan.commit);
    const installed = installKernel(sysroot.bootDir, plan.stateroot, kernel);
    kernelDir = installed.created;
    if (!plan.stage) etc = await prepareEtc(sysroot, work, plan.commit, config, plan.mergeFrom);
    record = {
      ...ref,
      bootcsum: kernel.bootcsum,
      kargs: plan.kargs,
      linux: installed.linux,
      initrd: installed.initrd,
      titleBase: titleOf(work, plan.version, plan.stateroot),
      mergeFrom: plan.mergeFrom ? deploymentId(plan.mergeFrom) : undefined,
      triesLeft: plan.triesLeft,
    };
    // Not fsynced one by one: the switch below (or the staged record) syncs the filesystem first.
    sysroot.writeOrigin(ref, makeOrigin(plan.refspec, opts.originExtra, opts.originSections), plan.stage);
    if (etc) sysroot.updateState(ref, (s) => (s.etc = etc ?? undefined), plan.stage);
    fs.renameSync(work, final);
  } catch (err) {
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(sysroot.originFile(ref), { force: true });
    fs.rmSync(sysroot.stateFile(ref), { force: true });
    if (kernelDir) fs.rmSync(kernelDir, { recursive: true, force: true });
    throw err instanceof StrataError ? err : ioError(err, 'deploy into', final);
  }

  if (plan.stage) {
    // A previously staged deployment is replaced by this one.
    fs.mkdirSync(path.dirname(sysroot.stagedFile), { recursive: true });
    writeFileAtomic(sysroot.stagedFile, JSON.stringify(record, null, 2) + '\n');
    const cleaned = removeUnreferenced(sysroot);
    return resultOf(plan, null, cleaned.deployments, false);
  }
  writeBootConfig(sysroot, plan.order.map((d) => (d === 'new' ? toBootDeployment(record) : toBootDeployment(d))));
  // The newest intent wins: a deployment staged earlier is dropped, once the new one is in place.
  fs.rmSync(sysroot.stagedFile, { force: true });
  const cleaned = removeUnreferenced(sysroot);
  return resultOf(plan, etc, cleaned.deployments, false);
}

/** `usr/etc` (OSTree's place for the default config), or `etc` in a tree that kept it there. */
export function configSubpath(repo: Repo, commit: Checksum): 'usr/etc' | 'etc' | null {
  const has = (p: string): boolean => {
    try {
      return resolveTreePath(repo, commit, p).kind === 'dir';
    } catch (err) {
      if (isStrataError(err, 'PATH_NOT_FOUND')) return false;
      throw err;
    }
  };
  const usrEtc = has('usr/etc');
  const etc = has('etc');
  if (usrEtc && etc) {
    throw new StrataError('TREE_LAYOUT', `commit ${commit.slice(0, 12)} has both /etc and /usr/etc; an OSTree-style tree keeps its default config in /usr/etc only`, { commit });
  }
  return usrEtc ? 'usr/etc' : etc ? 'etc' : null;
}

/**
 * Gives a checked-out deployment its writable /etc: a copy (never hardlinks:
 * editing it must not touch the repository) of the tree's default config,
 * with the merge deployment's local changes merged in. Built under a temp
 * name and renamed, so a rerun after a kill starts clean.
 */
export async function prepareEtc(sysroot: Sysroot, dir: string, commit: Checksum, config: 'usr/etc' | 'etc' | null, mergeFrom: Deployment | null): Promise<EtcSummary | null> {
  const target = path.join(dir, 'etc');
  const tmp = path.join(dir, `.etc.tmp-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  if (config === null) {
    if (!statOrNull(target)) fs.mkdirSync(target, { mode: 0o755 });
    return null;
  }
  await checkout({ repo: sysroot.repoPath, rev: commit, subpath: '/' + config, dest: tmp, copy: true });
  let summary: EtcSummary | null = null;
  if (mergeFrom) {
    const repo = sysroot.repo();
    const curDir = path.join(sysroot.deploymentDir(mergeFrom), 'etc');
    if (statOrNull(curDir)?.isDirectory()) {
      const r = mergeEtc({ repo, oldCommit: mergeFrom.checksum, oldSubpath: configSubpath(repo, mergeFrom.checksum) ?? 'usr/etc', curDir, newCommit: commit, newSubpath: config, newDir: tmp });
      summary = { conflicts: r.conflicts, kept: r.kept.length, removed: r.removed.length };
    }
  }
  fs.rmSync(target, { recursive: true, force: true });
  fs.renameSync(tmp, target);
  return summary;
}

function makeOrigin(refspec: string, extra: Record<string, string> | undefined, sections: Record<string, Record<string, string>> | undefined): Origin {
  const origin = new Map([['refspec', refspec], ...Object.entries(extra ?? {})]);
  const out: Origin = new Map([['origin', origin]]);
  for (const [name, keys] of Object.entries(sections ?? {})) if (name !== 'origin') out.set(name, new Map(Object.entries(keys)));
  return out;
}

/** The entry title: the OS name from os-release, then the commit's version. */
function titleOf(dir: string, version: string | null, stateroot: string): string {
  let name = stateroot;
  for (const f of ['usr/lib/os-release', 'usr/etc/os-release', 'etc/os-release']) {
    let text: string;
    try {
      text = fs.readFileSync(path.join(dir, f), 'utf8');
    } catch {
      continue;
    }
    const field = (k: string): string | undefined => {
      const m = new RegExp(`^${k}=(.*)$`, 'm').exec(text);
      return m ? m[1].trim().replace(/^(["'])(.*)\1$/, '$2') : undefined;
    };
    name = field('PRETTY_NAME') ?? field('NAME') ?? field('ID') ?? name;
    break;
  }
  name = name.replace(/[\n\r]/g, ' ');
  return version && !name.includes(version) ? `${name} ${version}` : name;
}
