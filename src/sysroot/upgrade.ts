// `strata admin upgrade` and `admin switch`: pull what the booted deployment
// follows (its origin's `remote:ref`), verified as every pull is, then deploy
// it (staged by default, so the /etc merge happens at shutdown) and say what
// changed. `--check` only asks the remote.

import fs from 'node:fs';
import { StrataError } from '../errors.js';
import { type Checksum, metadataLookup } from '../core/objects.js';
import { diffCommits } from '../repo/diff.js';
import { readRef, resolveRev, validateRefName } from '../repo/refs.js';
import { type PullProgress, pull, remoteRefCommit } from '../remote/pull.js';
import { deploy, resolveStateroot } from './deploy.js';
import { deployDerived, isLayered, layerBase, layeringOf, makeWorkDir } from './derive.js';
import { type Deployment, Sysroot, originRefspec } from './sysroot.js';

export interface UpgradeOptions {
  sysroot: string;
  booted?: string;
  /** Only find out whether an update exists. */
  check?: boolean;
  /** Pull, do not deploy. */
  downloadOnly?: boolean;
  /** Stage the new deployment (default) or switch to it now (false). */
  stage?: boolean;
  allowDowngrade?: boolean;
  /** `admin switch`: follow this `REMOTE:REF` (or local ref) from now on. */
  switchTo?: string;
  onProgress?: (p: PullProgress) => void;
}

export interface UpgradeResult {
  refspec: string;
  /** What runs now; null when `admin switch` makes the first deployment. */
  from: { checksum: Checksum; version: string | null } | null;
  /** The commit the refspec names now. */
  to: { checksum: Checksum; version: string | null; timestamp: string | null };
  available: boolean;
  downloaded: boolean;
  deployed: { stateroot: string; checksum: Checksum; serial: number; staged: boolean } | null;
  changes: { added: number; removed: number; modified: number; metadata: number } | null;
  /** What the pull fetched: objects one by one, or a static delta's parts. */
  pulled: { objects: number; bytes: number; delta: string | null } | null;
  /** Packages and removals re-applied on the new base (client-side layering); null when none. */
  layered: { commit: Checksum; packages: string[]; removals: string[] } | null;
  warnings: string[];
}

function splitRefspec(refspec: string): { remote: string | null; ref: string } {
  const colon = refspec.indexOf(':');
  const r = colon < 0 ? { remote: null, ref: refspec } : { remote: refspec.slice(0, colon), ref: refspec.slice(colon + 1) };
  validateRefName(r.ref);
  return r;
}

function versionOf(sysroot: Sysroot, c: Checksum): string | null {
  try {
    const v = metadataLookup(sysroot.repo().loadCommit(c).metadata, 'version');
    return typeof v === 'string' ? v : null;
  } catch {
    return null;
  }
}

export async function upgrade(opts: UpgradeOptions): Promise<UpgradeResult> {
  const sysroot = Sysroot.open(opts.sysroot);
  const list = sysroot.deployments();
  const booted = sysroot.booted(list, opts.booted);
  const base: Deployment | null = booted ?? list[0] ?? null;
  if (!base && opts.switchTo === undefined) throw new StrataError('DEPLOYMENT_NOT_FOUND', `sysroot ${sysroot.path} has no deployment to upgrade; start with 'strata admin switch REMOTE:REF'`, {});
  const refspec = opts.switchTo ?? originRefspec((base as Deployment).origin);
  if (!refspec) throw new StrataError('USAGE', `deployment ${base?.index} has no origin refspec to upgrade from; use 'strata admin switch REMOTE:REF'`, {});
  if (/^[0-9a-f]{64}$/.test(refspec)) throw new StrataError('USAGE', `deployment ${base?.index} was deployed from commit ${refspec.slice(0, 12)}, not a ref; use 'strata admin switch REMOTE:REF' to follow a branch`, {});
  const { remote, ref } = splitRefspec(refspec);
  const repoPath = sysroot.repoPath;
  // A layered deployment is compared by its base: the layered commit is the device's own.
  const baseCommit = base ? layerBase(sysroot, base.checksum) : null;
  const from = base && baseCommit ? { checksum: baseCommit, version: versionOf(sysroot, baseCommit) } : null;
  const stateroot = base?.stateroot ?? resolveStateroot(sysroot, list, null);

  let target: Checksum;
  let pulled: UpgradeResult['pulled'] = null;
  let remoteTimestamp: number | null = null;
  if (opts.check) {
    if (remote) ({ checksum: target, timestamp: remoteTimestamp } = await remoteRefCommit({ repo: repoPath, remote, ref }));
    else target = resolveRev(sysroot.repo(), ref);
  } else if (remote) {
    const r = await pull({ repo: repoPath, remote, rev: ref, allowDowngrade: opts.allowDowngrade, onProgress: opts.onProgress });
    target = r.commit;
    pulled = { objects: r.objects.fetched, bytes: r.bytes.fetched, delta: r.delta?.name ?? null };
  } else {
    const c = readRef(sysroot.repo(), ref);
    if (!c) throw new StrataError('REF_NOT_FOUND', `the sysroot repository has no ref '${ref}'`, { ref });
    target = c;
  }
  const repo = sysroot.repo();
  const timestamp = repo.hasObject(target, 'commit') ? repo.loadCommit(target).timestamp : remoteTimestamp;
  const to = { checksum: target, version: versionOf(sysroot, target), timestamp: timestamp === null ? null : new Date(timestamp * 1000).toISOString() };
  // An older commit than the running one is a downgrade, whatever the ref says: not an update.
  const baseTime = baseCommit && repo.hasObject(baseCommit, 'commit') ? repo.loadCommit(baseCommit).timestamp : null;
  const older = baseTime !== null && timestamp !== null && timestamp < baseTime;
  const available = opts.switchTo !== undefined || (target !== baseCommit && (!older || !!opts.allowDowngrade));
  const result: UpgradeResult = { refspec, from, to, available, downloaded: !opts.check && repo.hasObject(target, 'commit'), deployed: null, changes: null, pulled, layered: null, warnings: [] };
  // Switching branches may go to an older commit; following the same branch backwards may not.
  if (older && !opts.allowDowngrade && !opts.check && opts.switchTo === undefined) {
    throw new StrataError('DOWNGRADE_REFUSED', `${refspec} names ${target.slice(0, 12)}, older than the running ${base?.checksum.slice(0, 12)}; pass --allow-downgrade to go back`, { refspec });
  }
  if (opts.check || !available || opts.downloadOnly) return result;

  const layering = base && opts.switchTo === undefined ? layeringOf(base.origin) : null;
  if (layering?.transaction) result.warnings.push(`the changes of transaction ${layering.transaction} are not carried over to the new base`);
  let d;
  if (base && layering && isLayered({ ...layering, transaction: null })) {
    // Packages and removals are applied again on the new base, under the sysroot lock.
    const unlock = sysroot.lock();
    const work = makeWorkDir(sysroot);
    try {
      const l = { ...layering, transaction: null };
      const r = await deployDerived(sysroot, { from: base, base: target, layering: l, work, stage: opts.stage ?? true, booted: opts.booted, refspec });
      d = r.deploy;
      result.layered = { commit: r.commit, packages: l.packages.map((p) => p.name), removals: l.removals };
      for (const m of r.build?.removalsMissing ?? []) result.warnings.push(`${m} is no longer in the base; nothing to remove`);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
      unlock();
    }
  } else {
    d = await deploy({ sysroot: opts.sysroot, booted: opts.booted, rev: target, stateroot, refspec, stage: opts.stage ?? true });
  }
  result.deployed = { stateroot: d.deployment.stateroot, checksum: d.deployment.checksum, serial: d.deployment.serial, staged: d.staged };
  if (baseCommit && sysroot.repo().hasObject(baseCommit, 'commit')) {
    const { added, removed, modified, metadata } = diffCommits(sysroot.repo(), baseCommit, target).summary;
    result.changes = { added, removed, modified, metadata };
  }
  return result;
}
