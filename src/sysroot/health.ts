// `strata health run`: greenboot's job on top of systemd's boot assessment.
// After a boot it first notices a fallback (the default entry's tries ran
// out, so the bootloader booted another deployment): the failed deployment
// is marked bad and the booted one becomes the default again. Then it runs
// the booted deployment's checks; all required ones passing blesses the boot
// (the entry's `+LEFT-DONE` counter is dropped by a rename), a failure is
// recorded and, while the entry is still being counted, a reboot is asked for
// so the bootloader can try again or fall back.

import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { StrataError, ioError } from '../errors.js';
import { fsyncDir } from '../repo/repo.js';
import { formatEntryName, parseEntryName } from './bls.js';
import { type HealthReport, runHealthChecks } from './health-checks.js';
import { moveToFront } from './manage.js';
import { describeDeployment, switchOrder } from './order.js';
import { type Deployment, type HealthRecord, Sysroot, deploymentId } from './sysroot.js';

export interface HealthRunOptions {
  sysroot: string;
  booted?: string;
  /** Per check; default 5 minutes. */
  timeoutMs?: number;
  /** What runs to reboot after a failed required check; null: only report that a reboot is needed. */
  rebootCommand?: string[] | null;
}

export interface HealthRunResult {
  deployment: string;
  ok: boolean;
  blessed: boolean;
  /** Set when this boot is a fallback: the deployment that failed and the one booted instead. */
  rolledBack: { from: string; to: string } | null;
  rebootRequested: boolean;
  rebooted: boolean;
  report: HealthReport;
}

const HEALTH_DIRS = ['etc/strata/health.d', 'usr/lib/strata/health.d'];

export async function healthRun(opts: HealthRunOptions): Promise<HealthRunResult> {
  const sysroot = Sysroot.open(opts.sysroot);
  let list = sysroot.deployments();
  let booted = sysroot.booted(list, opts.booted);
  if (!booted) throw new StrataError('NOT_BOOTED', `no booted deployment in ${sysroot.path}: health checks run on a booted system (or pass --booted PATH)`, {});

  const rolledBack = noteFallback(sysroot, list, booted);
  if (rolledBack) {
    list = sysroot.deployments();
    booted = list.find((d) => deploymentId(d) === deploymentId(booted as Deployment)) ?? booted;
  }

  const root = sysroot.deploymentDir(booted);
  const dirs = { required: HEALTH_DIRS.map((d) => path.join(root, d, 'required.d')), wanted: HEALTH_DIRS.map((d) => path.join(root, d, 'wanted.d')) };
  const report = await runHealthChecks({
    dirs,
    timeoutMs: opts.timeoutMs ?? 300_000,
    env: { STRATA_SYSROOT: sysroot.path, STRATA_DEPLOYMENT: root, STRATA_DEPLOYMENT_CHECKSUM: booted.checksum },
  });
  const record: HealthRecord = {
    ok: report.ok,
    at: new Date().toISOString(),
    failed: report.checks.filter((c) => !c.ok && c.kind === 'required').map((c) => ({ name: c.name, reason: c.reason ?? 'failed' })),
    warnings: [...report.checks.filter((c) => !c.ok && c.kind === 'wanted').map((c) => `${c.name}: ${c.reason}`), ...report.warnings],
  };
  const counting = booted.triesLeft !== undefined;
  let blessed = false;
  const unlock = sysroot.lock();
  try {
    sysroot.updateState(booted, (s) => {
      s.health = record;
      if (report.ok) delete s.bad;
    });
    if (report.ok && counting) {
      blessBoot(sysroot, booted);
      blessed = true;
    }
  } finally {
    unlock();
  }
  const rebootRequested = !report.ok && counting;
  let rebooted = false;
  if (rebootRequested && opts.rebootCommand?.length) {
    const r = spawnSync(opts.rebootCommand[0], opts.rebootCommand.slice(1), { stdio: 'inherit' });
    rebooted = r.status === 0;
  }
  return { deployment: deploymentId(booted), ok: report.ok, blessed, rolledBack, rebootRequested, rebooted, report };
}

/** Drops the tries counter from the booted entry: this boot is good (what systemd-bless-boot does). */
export function blessBoot(sysroot: Sysroot, d: Deployment): void {
  const dir = path.join(sysroot.bootDir, `loader.${sysroot.bootversion()}`, 'entries');
  const name = parseEntryName(d.entryFile);
  if (!name || name.triesLeft === undefined) return;
  const blessed = formatEntryName({ base: name.base });
  try {
    fs.renameSync(path.join(dir, d.entryFile), path.join(dir, blessed));
    fsyncDir(dir);
  } catch (err) {
    throw ioError(err, 'bless boot entry', path.join(dir, d.entryFile));
  }
}

/**
 * A boot of anything but the default while the default's tries are used up
 * is the bootloader's fallback: mark the default bad and make the booted
 * deployment the default, so the bad one is not tried again.
 */
function noteFallback(sysroot: Sysroot, list: Deployment[], booted: Deployment): { from: string; to: string } | null {
  const failed = list[0];
  if (!failed || booted.index === 0 || failed.triesLeft !== 0) return null;
  const unlock = sysroot.lock();
  try {
    const reason = `boot tries exhausted (${failed.triesDone ?? '?'} failed boots); the bootloader fell back to ${describeDeployment(booted)}`;
    sysroot.updateState(failed, (s) => (s.bad = { at: new Date().toISOString(), reason }));
    switchOrder(sysroot, moveToFront(list, booted));
  } finally {
    unlock();
  }
  return { from: deploymentId(failed), to: deploymentId(booted) };
}
