// The admin commands that reorder or prune existing deployments: rollback,
// set-default, undeploy, pin, finalize-staged and cleanup. Each computes the
// new order first (pure, over the list read from the boot entries) and then
// switches to it in one step.

import fs from 'node:fs';
import { StrataError } from '../errors.js';
import { planPrune, applyPrune } from '../repo/prune.js';
import { lockRepo } from '../repo/transaction.js';
import { configSubpath, applyRetention, deploy, prepareEtc } from './deploy.js';
import type { KargEdits } from './kargs.js';
import { type CleanupResult, removeUnreferenced, switchOrder, toBootDeployment } from './order.js';
import { type Deployment, type EtcSummary, Sysroot, deploymentId, isPinned, originRefspec } from './sysroot.js';
import type { BootDeployment } from './boot-config.js';

interface SysrootOptions {
  sysroot: string;
  booted?: string;
}

/** Finds a deployment by index (`0`), full or abbreviated checksum, or checksum.serial. */
export function findDeployment(list: Deployment[], which: string | number): Deployment {
  const text = String(which).trim();
  if (/^\d+$/.test(text) && text.length < 6) {
    const d = list[Number(text)];
    if (!d) {
      const have = list.length === 0 ? 'there are no deployments yet' : `there are ${list.length}: 0-${list.length - 1}`;
      throw new StrataError('DEPLOYMENT_NOT_FOUND', `there is no deployment ${text} (${have}); see 'strata admin status'`, { which: text });
    }
    return d;
  }
  const [sum, serial] = text.split('.');
  const hits = list.filter((d) => d.checksum.startsWith(sum) && (serial === undefined || String(d.serial) === serial));
  if (hits.length === 1) return hits[0];
  if (hits.length > 1) throw new StrataError('DEPLOYMENT_NOT_FOUND', `'${text}' matches ${hits.length} deployments; give the index or checksum.serial`, { which: text });
  throw new StrataError('DEPLOYMENT_NOT_FOUND', `no deployment matches '${text}'; see 'strata admin status'`, { which: text });
}

/** The deployment `admin rollback` would make default: the booted one when an update is pending, else the next one. */
export function rollbackTarget(list: Deployment[], booted: Deployment | null): Deployment | null {
  if (booted && booted.index !== 0) return booted;
  return list[1] ?? null;
}

/** Makes `target` the default, keeping the others in their order. Tries counters reset on an explicit choice of a bad entry. */
export function moveToFront(list: Deployment[], target: Deployment, freshTries?: number): BootDeployment[] {
  const rest = list.filter((d) => d !== target).map(toBootDeployment);
  const first = toBootDeployment(target);
  if (first.triesLeft === 0) {
    first.triesLeft = freshTries;
    first.triesDone = undefined;
  }
  return [first, ...rest];
}

export interface OrderChange {
  default: { stateroot: string; checksum: string; serial: number };
  previousDefault: { stateroot: string; checksum: string; serial: number } | null;
  removed: string[];
  dryRun: boolean;
}

function changeOf(target: Deployment, list: Deployment[], cleaned: CleanupResult | null, dryRun: boolean): OrderChange {
  const ref = (d: Deployment) => ({ stateroot: d.stateroot, checksum: d.checksum, serial: d.serial });
  return { default: ref(target), previousDefault: list[0] ? ref(list[0]) : null, removed: cleaned?.deployments ?? [], dryRun };
}

function withLock<T>(sysroot: Sysroot, dryRun: boolean | undefined, run: () => T): T {
  const unlock = dryRun ? () => undefined : sysroot.lock();
  try {
    return run();
  } finally {
    unlock();
  }
}

function tries(sysroot: Sysroot): number | undefined {
  const n = Number(sysroot.config('boot-counting-tries') ?? 0);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

export function rollback(opts: SysrootOptions & { to?: string; dryRun?: boolean }): OrderChange {
  const sysroot = Sysroot.open(opts.sysroot);
  return withLock(sysroot, opts.dryRun, () => {
    const list = sysroot.deployments();
    const booted = sysroot.booted(list, opts.booted);
    const target = opts.to !== undefined ? findDeployment(list, opts.to) : rollbackTarget(list, booted);
    if (!target) throw new StrataError('NO_ROLLBACK', `there is no other deployment to roll back to (${list.length} deployment${list.length === 1 ? '' : 's'})`, {});
    if (target.index === 0) throw new StrataError('NO_ROLLBACK', `deployment ${target.index} (${target.checksum.slice(0, 12)}) is already the default`, {});
    if (opts.dryRun) return changeOf(target, list, null, true);
    return changeOf(target, list, switchOrder(sysroot, moveToFront(list, target, tries(sysroot))), false);
  });
}

export function setDefault(opts: SysrootOptions & { which: string; dryRun?: boolean }): OrderChange {
  const sysroot = Sysroot.open(opts.sysroot);
  return withLock(sysroot, opts.dryRun, () => {
    const list = sysroot.deployments();
    const target = findDeployment(list, opts.which);
    if (opts.dryRun || target.index === 0) return changeOf(target, list, null, !!opts.dryRun);
    return changeOf(target, list, switchOrder(sysroot, moveToFront(list, target, tries(sysroot))), false);
  });
}

export function undeploy(opts: SysrootOptions & { which: string; dryRun?: boolean }): { removed: string; dryRun: boolean } {
  const sysroot = Sysroot.open(opts.sysroot);
  return withLock(sysroot, opts.dryRun, () => {
    const list = sysroot.deployments();
    const booted = sysroot.booted(list, opts.booted);
    const target = findDeployment(list, opts.which);
    const id = deploymentId(target);
    if (booted && deploymentId(booted) === id) throw new StrataError('DEPLOYMENT_IN_USE', `deployment ${target.index} is the booted one; boot another before removing it`, { index: target.index });
    if (isPinned(target.origin)) throw new StrataError('DEPLOYMENT_IN_USE', `deployment ${target.index} is pinned; unpin it first ('strata admin pin --unpin ${target.index}')`, { index: target.index });
    if (list.length === 1) throw new StrataError('DEPLOYMENT_IN_USE', `deployment ${target.index} is the only one; a sysroot needs one to boot`, { index: target.index });
    if (!opts.dryRun) switchOrder(sysroot, list.filter((d) => d !== target).map(toBootDeployment));
    return { removed: id, dryRun: !!opts.dryRun };
  });
}

export function pin(opts: SysrootOptions & { which: string; unpin?: boolean }): { deployment: string; pinned: boolean } {
  const sysroot = Sysroot.open(opts.sysroot);
  return withLock(sysroot, false, () => {
    const target = findDeployment(sysroot.deployments(), opts.which);
    const origin = target.origin;
    const transient = origin.get('libostree-transient') ?? new Map<string, string>();
    if (opts.unpin) transient.delete('pinned');
    else transient.set('pinned', 'true');
    origin.set('libostree-transient', transient);
    sysroot.writeOrigin(target, origin);
    return { deployment: deploymentId(target), pinned: !opts.unpin };
  });
}

export interface FinalizeResult {
  finalized: string | null;
  etc: EtcSummary | null;
  removed: string[];
}

/** What a shutdown service runs: merge /etc into the staged deployment and make it the default. */
export async function finalizeStaged(opts: SysrootOptions): Promise<FinalizeResult> {
  const sysroot = Sysroot.open(opts.sysroot);
  const unlock = sysroot.lock();
  try {
    const list = sysroot.deployments();
    const staged = sysroot.staged(list);
    if (!staged) {
      // Nothing waits, or a previous run switched and was stopped before it could say so.
      fs.rmSync(sysroot.stagedFile, { force: true });
      return { finalized: null, etc: null, removed: [] };
    }
    const mergeFrom = list.find((d) => deploymentId(d) === staged.mergeFrom) ?? null;
    const dir = sysroot.deploymentDir(staged);
    const repo = sysroot.repo();
    const etc = await prepareEtc(sysroot, dir, staged.checksum, configSubpath(repo, staged.checksum), mergeFrom);
    if (etc) sysroot.updateState(staged, (s) => (s.etc = etc));
    const booted = sysroot.booted(list, opts.booted);
    const { keep } = applyRetention(['new', ...list], booted, 0);
    const cleaned = switchOrder(sysroot, keep.map((d) => toBootDeployment(d === 'new' ? staged : d)));
    fs.rmSync(sysroot.stagedFile, { force: true });
    return { finalized: deploymentId(staged), etc, removed: cleaned.deployments };
  } finally {
    unlock();
  }
}

export interface AdminCleanupResult extends CleanupResult {
  dropped: string[];
  prunedObjects: number;
  freedBytes: number;
  dryRun: boolean;
}

/**
 * Applies retention (keep booted, default, rollback, pinned and `retain`
 * more), deletes what nothing references, then prunes repository objects
 * that no ref and no deployment needs.
 */
export function cleanup(opts: SysrootOptions & { retain?: number; dryRun?: boolean; prune?: boolean }): AdminCleanupResult {
  const sysroot = Sysroot.open(opts.sysroot);
  return withLock(sysroot, opts.dryRun, () => {
    const list = sysroot.deployments();
    const booted = sysroot.booted(list, opts.booted);
    const { keep, drop } = applyRetention(list, booted, opts.retain ?? 0);
    const result: AdminCleanupResult = { deployments: [], kernels: [], dropped: drop.map(deploymentId), prunedObjects: 0, freedBytes: 0, dryRun: !!opts.dryRun };
    if (opts.dryRun) return result;
    const cleaned = drop.length ? switchOrder(sysroot, keep.map((d) => toBootDeployment(d as Deployment))) : removeUnreferenced(sysroot);
    Object.assign(result, cleaned);
    if (opts.prune !== false) {
      const repo = sysroot.repo();
      const unlockRepo = lockRepo(repo);
      try {
        const staged = sysroot.staged();
        const roots = [...sysroot.deployments().map((d) => d.checksum), ...(staged ? [staged.checksum] : [])];
        // As ostree's sysroot cleanup: ref heads and deployments, no history (depth 0).
        const plan = planPrune(repo, { refsOnly: true, depth: 0, extraRoots: roots });
        result.prunedObjects = applyPrune(plan);
        result.freedBytes = plan.freedBytes;
      } finally {
        unlockRepo();
      }
    }
    return result;
  });
}

/**
 * `admin kargs`: without edits, the current kernel arguments (booted, else
 * default deployment); with edits, a new deployment of the same commit
 * carrying the edited arguments (as `rpm-ostree kargs` does).
 */
export async function changeKargs(opts: SysrootOptions & { edits: KargEdits; stage?: boolean }): Promise<{ kargs: string[]; deployed: { stateroot: string; checksum: string; serial: number } | null }> {
  const sysroot = Sysroot.open(opts.sysroot);
  const list = sysroot.deployments();
  const base = sysroot.booted(list, opts.booted) ?? list[0];
  if (!base) throw new StrataError('DEPLOYMENT_NOT_FOUND', `sysroot ${sysroot.path} has no deployment yet`, {});
  const e = opts.edits;
  if (!e.append?.length && !e.delete?.length && !e.replace?.length && !e.set?.length) return { kargs: base.kargs, deployed: null };
  const r = await deploy({
    sysroot: opts.sysroot,
    booted: opts.booted,
    rev: base.checksum,
    stateroot: base.stateroot,
    refspec: originRefspec(base.origin),
    kargsReplaceAll: base.kargs,
    kargs: e,
    stage: opts.stage,
  });
  return { kargs: r.kargs, deployed: r.deployment };
}
