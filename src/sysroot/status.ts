// `strata admin status`: every deployment with what a person deciding to
// reboot, roll back or clean up needs to see.

import { type Checksum, metadataLookup } from '../core/objects.js';
import { type Deployment, type DeploymentState, type Origin, type StagedRecord, Sysroot, deploymentId, isPinned, originRefspec } from './sysroot.js';
import { rollbackTarget } from './manage.js';
import { layerBase, layeringOf } from './derive.js';

export interface DeploymentStatus {
  /** Position in the boot order; null for a staged deployment (not in it yet). */
  index: number | null;
  stateroot: string;
  checksum: string;
  serial: number;
  version: string | null;
  timestamp: string | null;
  origin: string | null;
  booted: boolean;
  /** The default entry: what the next boot picks (unless boot counting says otherwise). */
  default: boolean;
  /** Default but not booted: an update waits for a reboot. */
  pending: boolean;
  /** What `admin rollback` would make the default. */
  rollback: boolean;
  staged: boolean;
  pinned: boolean;
  triesLeft: number | null;
  /** Failed its health checks until the bootloader fell back, or its tries ran out. */
  bad: boolean;
  badReason: string | null;
  health: DeploymentState['health'] | null;
  etcConflicts: { path: string; reason: string }[];
  kargs: string[];
  path: string;
  /** Client-side layering: the base commit and what is on top of it; null for a plain deployment. */
  layered: { base: string; packages: string[]; removed: string[]; transaction: string | null } | null;
}

export interface StatusResult {
  sysroot: string;
  booted: number | null;
  deployments: DeploymentStatus[];
}

export function status(opts: { sysroot: string; booted?: string }): StatusResult {
  const sysroot = Sysroot.open(opts.sysroot);
  const list = sysroot.deployments();
  const booted = sysroot.booted(list, opts.booted);
  const staged = sysroot.staged(list);
  const target = rollbackTarget(list, booted);
  const rows: DeploymentStatus[] = [];
  if (staged) rows.push(describe(sysroot, staged, null, { booted: false, staged: true, rollback: false, origin: sysroot.readOrigin(staged) }));
  for (const d of list) {
    const isBooted = !!booted && deploymentId(d) === deploymentId(booted);
    rows.push(describe(sysroot, d, d.index, { booted: isBooted, staged: false, rollback: !!target && deploymentId(target) === deploymentId(d), origin: d.origin }));
  }
  for (const r of rows) r.pending = r.default && !!booted && !r.booted;
  return { sysroot: sysroot.path, booted: booted?.index ?? null, deployments: rows };
}

function describe(sysroot: Sysroot, d: Deployment | StagedRecord, index: number | null, f: { booted: boolean; staged: boolean; rollback: boolean; origin: Origin }): DeploymentStatus {
  let version: string | null = null;
  let timestamp: string | null = null;
  try {
    const c = sysroot.repo().loadCommit(d.checksum);
    const v = metadataLookup(c.metadata, 'version');
    version = typeof v === 'string' ? v : null;
    timestamp = new Date(c.timestamp * 1000).toISOString();
  } catch {
    // the commit object is gone (pruned by hand): show what the entry says
  }
  const state = sysroot.readState(d);
  const triesLeft = 'entryFile' in d ? d.triesLeft ?? null : d.triesLeft ?? null;
  const exhausted = 'entryFile' in d && d.triesLeft === 0;
  return {
    index,
    stateroot: d.stateroot,
    checksum: d.checksum,
    serial: d.serial,
    version,
    timestamp,
    origin: originRefspec(f.origin) ?? null,
    booted: f.booted,
    default: index === 0,
    pending: false,
    rollback: f.rollback,
    staged: f.staged,
    pinned: isPinned(f.origin),
    triesLeft,
    bad: !!state.bad || exhausted,
    badReason: state.bad?.reason ?? (exhausted ? 'boot tries exhausted' : null),
    health: state.health ?? null,
    etcConflicts: state.etc?.conflicts ?? [],
    kargs: d.kargs,
    path: sysroot.deploymentDir(d),
    layered: layeredOf(sysroot, d.checksum as Checksum, f.origin),
  };
}

function layeredOf(sysroot: Sysroot, checksum: Checksum, origin: Origin): DeploymentStatus['layered'] {
  const base = layerBase(sysroot, checksum);
  const l = layeringOf(origin);
  if (base === checksum && !l.packages.length && !l.removals.length && !l.transaction) return null;
  return { base, packages: l.packages.map((p) => p.name), removed: l.removals, transaction: l.transaction };
}
