// Devices for agent tests: a served archive repository with releases of a
// small OS, sysroots with v1 deployed from it (boot counting on, booted
// through the bootloader model, blessed), and a simulated reboot: shutdown
// (finalize the staged deployment), the model's boot, the health check service.

import fs from 'node:fs';
import path from 'node:path';
import { Repo } from '../../src/repo/repo.js';
import { commit } from '../../src/repo/commit.js';
import { addRemote } from '../../src/remote/remotes.js';
import { pull } from '../../src/remote/pull.js';
import { deploy } from '../../src/sysroot/deploy.js';
import { healthRun } from '../../src/sysroot/health.js';
import { finalizeStaged } from '../../src/sysroot/manage.js';
import { initFs, osInit } from '../../src/sysroot/init.js';
import { status } from '../../src/sysroot/status.js';
import type { AgentOptions } from '../../src/fleet/agent/agent.js';
import { boot } from './boot-model.js';
import { STATEROOT, type OsVersion, writeOsTree } from './sysroot.js';

export const FLEET_REF = 'testos/stable';

/** An archive repo with one commit per version (in order, increasing timestamps); returns the commits. */
export async function makeServedRepo(dir: string, versions: OsVersion[]): Promise<string[]> {
  Repo.init(dir, 'archive');
  const commits: string[] = [];
  for (const [i, v] of versions.entries()) {
    const src = `${dir}-tree-${i}`;
    writeOsTree(src, v);
    commits.push((await commit({ repo: dir, branch: FLEET_REF, source: src, metadata: [['version', v.version]], timestamp: 1_700_000_000 + i * 100_000 })).commit);
    fs.rmSync(src, { recursive: true, force: true });
  }
  return commits;
}

export interface SimDevice {
  name: string;
  dir: string;
  stateFile: string;
  rebootLog: string;
  /** The booted deployment's directory. */
  booted: string;
  id: string;
  /** A reboot was asked for (by the agent or the health checks) and has not happened yet. */
  needsBoot: boolean;
}

/** The factory image: `first` deployed from the served repo, booted, health checks run (blessed). */
export async function makeDevice(base: string, name: string, repoDir: string, first: string, tries = 2): Promise<SimDevice> {
  const root = path.join(base, name);
  const dir = path.join(root, 'sysroot');
  initFs({ dir });
  osInit({ sysroot: dir, stateroot: STATEROOT });
  fs.appendFileSync(path.join(dir, 'ostree/repo/config'), `\n[sysroot]\nboot-counting-tries=${tries}\n`);
  addRemote({ repo: path.join(dir, 'ostree/repo'), name: 'factory', url: `file://${repoDir}`, noSignVerify: true });
  await pull({ repo: path.join(dir, 'ostree/repo'), remote: 'factory', rev: first });
  await deploy({ sysroot: dir, rev: first, refspec: `factory:${FLEET_REF}` });
  const booted = fs.realpathSync(boot(dir).deployment);
  const h = await healthRun({ sysroot: dir, booted, rebootCommand: null });
  if (!h.blessed) throw new Error(`${name}: the factory image did not pass its health checks`);
  return { name, dir, stateFile: path.join(root, 'agent.json'), rebootLog: path.join(root, 'reboots'), booted, id: '', needsBoot: false };
}

/** Options for the real agent on this device: its reboot command only appends a line to a log. */
export function agentOptionsFor(d: SimDevice, extra: Partial<AgentOptions> = {}): AgentOptions {
  return {
    sysroot: d.dir,
    booted: d.booted,
    stateFile: d.stateFile,
    rebootCommand: ['sh', '-c', `echo reboot >> ${d.rebootLog}`],
    log: process.env.E2E_DEBUG ? (line) => console.log(d.name, line) : undefined,
    ...extra,
  };
}

/** Shutdown (finalize the staged deployment), one boot through the model, then `strata health run`. */
export async function rebootDevice(d: SimDevice): Promise<void> {
  await finalizeStaged({ sysroot: d.dir, booted: d.booted });
  d.booted = fs.realpathSync(boot(d.dir).deployment);
  const h = await healthRun({ sysroot: d.dir, booted: d.booted, rebootCommand: null });
  d.needsBoot = h.rebootRequested;
}

export function rebootsOf(d: SimDevice): number {
  return fs.existsSync(d.rebootLog) ? fs.readFileSync(d.rebootLog, 'utf8').split('\n').filter(Boolean).length : 0;
}

/** The commit the device runs now, as `admin status` sees it. */
export function runningCommit(d: SimDevice): string | undefined {
  return status({ sysroot: d.dir, booted: d.booted }).deployments.find((x) => x.booted)?.checksum;
}
