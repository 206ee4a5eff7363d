// `strata agent run`: the device side of fleet rollouts. Each step observes
// the sysroot, asks decideAgentStep (decide.ts, pure) what to do, saves the
// new state atomically, sends the reports it owes, and performs the one
// action decided (ask the server, pull and stage, take or give back the
// reboot slot, reboot), then observes and asks again, until the answer is to
// wait. `--once` stops there; otherwise the agent sleeps and steps again.

import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { StrataError, isStrataError } from '../../errors.js';
import { toChecksum } from '../../core/objects.js';
import { writeFileAtomic } from '../../repo/repo.js';
import { pull } from '../../remote/pull.js';
import { addRemote, deleteRemote, listRemotes } from '../../remote/remotes.js';
import { deploy } from '../../sysroot/deploy.js';
import { status, type DeploymentStatus } from '../../sysroot/status.js';
import { verifyDeployment } from '../../sysroot/verify.js';
import { Sysroot, deploymentId } from '../../sysroot/sysroot.js';
import { type AgentAction, type AgentConfig, type Observation, type ReportIntent, DEFAULT_CONFIG, decideAgentStep } from './decide.js';
import { DeviceClient, type DeviceReport } from './device-client.js';
import { etcDigestOfDir } from './etc-digest.js';
import { type AgentState, type Target, KEEP_OUTBOX, loadState, saveState, updateKey } from './state.js';

export interface AgentOptions {
  sysroot: string;
  /** The booted deployment (tests, harnesses); default: found as `admin status` finds it. */
  booted?: string;
  stateFile: string;
  /** Override what `agent enroll` stored. */
  server?: string;
  token?: string;
  config?: Partial<AgentConfig>;
  /** Runs to reboot (argv); null: only record that a reboot is due. */
  rebootCommand: string[] | null;
  /** The remote the agent configures in the sysroot repo for the server's repoUrl. */
  remoteName?: string;
  /** A public key (file or base64): pulled commits must carry its ed25519 signature. */
  signVerify?: string;
  /** Skip re-hashing the booted deployment for reports (verify is then not reported). */
  noVerify?: boolean;
  fetch?: typeof fetch;
  now?: () => number;
  random?: () => number;
  log?: (line: string) => void;
}

export interface StepResult {
  phase: string;
  /** Every action taken, in order (the last is `wait` or `reboot`). */
  actions: string[];
  reportsSent: string[];
  wait: { seconds: number; reason: string } | null;
  rebooted: boolean;
  state: AgentState;
}

const MAX_ACTIONS = 32;

/** The file whose presence means "this agent asked for a reboot in this boot": /run is emptied by a boot. */
export function rebootMarker(sysroot: string): string {
  return path.join(sysroot, 'run/strata/agent-reboot.json');
}

interface Local {
  obs: Pick<Observation, 'booted' | 'pending' | 'health' | 'rebootPending'>;
}

function observeLocal(opts: AgentOptions): Local {
  const sysroot = Sysroot.open(opts.sysroot);
  const list = sysroot.deployments();
  const booted = sysroot.booted(list, opts.booted);
  const staged = sysroot.staged(list);
  const pending = staged?.checksum ?? (booted && list[0] && deploymentId(list[0]) !== deploymentId(booted) ? list[0].checksum : null);
  const health = booted ? sysroot.readState(booted).health ?? null : null;
  return {
    obs: {
      booted: booted ? { commit: booted.checksum, counting: booted.triesLeft !== undefined } : null,
      pending,
      health: health ? { ok: health.ok, at: health.at } : null,
      rebootPending: fs.existsSync(rebootMarker(sysroot.path)),
    },
  };
}

function configOf(opts: AgentOptions): AgentConfig {
  return { ...DEFAULT_CONFIG, ...opts.config };
}

function clientOf(opts: AgentOptions, state: AgentState): DeviceClient {
  const server = opts.server ?? state.server;
  const token = opts.token ?? state.token;
  if (!server || !token) {
    throw new StrataError('AGENT_NOT_ENROLLED', `the agent has no ${!server ? 'server' : 'device token'} (state ${opts.stateFile}): run 'strata agent enroll' or pass --server and --token`, { stateFile: opts.stateFile });
  }
  return new DeviceClient({ server, token, fetch: opts.fetch });
}

/** One step: act until the decision is to wait, or the reboot command has run. */
export async function agentStep(opts: AgentOptions): Promise<StepResult> {
  const now = opts.now ?? Date.now;
  const random = opts.random ?? Math.random;
  const log = opts.log ?? (() => undefined);
  const config = configOf(opts);
  let state = loadState(opts.stateFile);
  const client = clientOf(opts, state);
  const result: StepResult = { phase: state.phase.name, actions: [], reportsSent: [], wait: null, rebooted: false, state };

  let outcome: Partial<Observation> = {};
  let polled = false;
  if (state.outbox.length && reachable(state, now())) outcome.flush = await flush();

  for (let i = 0; i < MAX_ACTIONS; i++) {
    const local = observeLocal(opts);
    const d = decideAgentStep(state, { ...local.obs, now: now(), random: random(), polled, ...outcome }, config);
    state = d.state;
    for (const intent of d.reports) state.outbox.push(await buildReport(opts, intent));
    if (state.outbox.length > KEEP_OUTBOX) state.outbox.splice(0, state.outbox.length - KEEP_OUTBOX);
    if (d.action.kind === 'reboot') {
      // The marker first: a crash between the two leaves a state that reboots (once), never one that waits for a reboot that was never asked for.
      fs.mkdirSync(path.dirname(rebootMarker(opts.sysroot)), { recursive: true });
      writeFileAtomic(rebootMarker(opts.sysroot), JSON.stringify({ commit: d.action.target.commit, at: new Date(now()).toISOString() }) + '\n');
    }
    saveState(opts.stateFile, state);
    outcome = {};
    if (d.reports.length && reachable(state, now())) outcome.flush = await flush();
    result.actions.push(describe(d.action));
    log(describe(d.action));
    const a = d.action;
    if (a.kind === 'wait') {
      result.wait = { seconds: a.seconds, reason: a.reason };
      break;
    }
    if (a.kind === 'reboot') {
      reboot(a.target);
      result.rebooted = true;
      break;
    }
    if (a.kind === 'poll') polled = true;
    Object.assign(outcome, await perform(a));
  }
  result.state = state;
  result.phase = state.phase.name;
  return result;

  async function flush(): Promise<{ ok: true } | { ok: false; error: string }> {
    while (state.outbox.length) {
      const report = state.outbox[0];
      try {
        await client.report(report);
        result.reportsSent.push(report.state);
      } catch (err) {
        if (isStrataError(err, 'AGENT_REJECTED') && err.data.status !== 401 && err.data.status !== 403) {
          // The server will never take this one: drop it rather than block every later report.
          log(`report '${report.state}' refused, dropped: ${err.message}`);
        } else if (isStrataError(err, 'AGENT_SERVER_UNREACHABLE') || isStrataError(err, 'AGENT_PROTOCOL')) {
          log(err.message);
          return { ok: false, error: err.message };
        } else {
          throw err;
        }
      }
      state.outbox.shift();
      saveState(opts.stateFile, state);
    }
    return { ok: true };
  }

  async function perform(a: Exclude<AgentAction, { kind: 'wait' } | { kind: 'reboot' }>): Promise<Partial<Observation>> {
    const id = state.deviceId ?? 'unknown';
    const group = state.group ?? 'default';
    try {
      switch (a.kind) {
        case 'poll':
          return { next: { ok: true, answer: await client.next() } };
        case 'stage':
          await stageTarget(opts, a.target, client.server.href);
          return { staged: { ok: true } };
        case 'acquire-lock': {
          const r = await client.preReboot(id, group);
          return { lock: r.ok ? { ok: true } : { ok: false, denied: true, error: `${r.kind}: ${r.value}` } };
        }
        case 'release-lock': {
          const r = await client.steadyState(id, group);
          // A server that no longer knows the slot has nothing to give back.
          if (!r.ok) log(`steady-state answered ${r.status} ${r.kind}: ${r.value}`);
          return { released: { ok: true } };
        }
      }
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      log(msg);
      const offline = isStrataError(err, 'AGENT_SERVER_UNREACHABLE') || isStrataError(err, 'AGENT_PROTOCOL');
      if (a.kind === 'stage') {
        if (isStrataError(err, 'AGENT_REJECTED') || !(err instanceof StrataError)) throw err;
        return { staged: { ok: false, error: msg, permanent: ['DOWNGRADE_REFUSED', 'NO_KERNEL', 'TREE_LAYOUT'].includes(err.code) } };
      }
      if (!offline) throw err;
      if (a.kind === 'poll') return { next: { ok: false, error: msg } };
      if (a.kind === 'acquire-lock') return { lock: { ok: false, denied: false, error: msg } };
      return { released: { ok: false, error: msg } };
    }
  }

  function reboot(target: Target): void {
    if (!opts.rebootCommand?.length) {
      log(`reboot due for ${target.commit.slice(0, 12)}; no reboot command configured`);
      return;
    }
    const r = spawnSync(opts.rebootCommand[0], opts.rebootCommand.slice(1), { stdio: 'inherit' });
    if (r.status !== 0) {
      // Nothing rebooted: undo the record so that the update can reboot once, later.
      state.phase = { name: 'staged', target };
      state.rebootedFor = state.rebootedFor.filter((x) => x.key !== updateKey(target));
      fs.rmSync(rebootMarker(opts.sysroot), { force: true });
      saveState(opts.stateFile, state);
      throw new StrataError('COMMAND_FAILED', `reboot command '${opts.rebootCommand.join(' ')}' failed (${r.error?.message ?? `exit ${r.status}`})`, {});
    }
  }
}

function reachable(state: AgentState, now: number): boolean {
  return state.backoff.until === null || now >= Date.parse(state.backoff.until);
}

function describe(a: AgentAction): string {
  switch (a.kind) {
    case 'wait':
      return `wait ${Math.round(a.seconds)}s (${a.reason})`;
    case 'stage':
    case 'reboot':
      return `${a.kind} ${a.target.commit.slice(0, 12)}${a.target.version ? ` (${a.target.version})` : ''}`;
    default:
      return a.kind;
  }
}

/** Points the agent's remote at the server's repository URL (added, or replaced when the URL changed). */
function ensureRemote(repo: string, name: string, url: string, signVerify: string | undefined): void {
  const existing = listRemotes({ repo }).find((r) => r.name === name);
  if (existing && existing.url === url && existing.signVerify === (signVerify !== undefined)) return;
  if (existing) deleteRemote({ repo, name });
  addRemote({ repo, name, url, signVerify, noSignVerify: signVerify === undefined });
}

/** Pulls the target commit (every object verified; its signature too with --sign-verify) and stages it. */
export async function stageTarget(opts: AgentOptions, t: Target, server: string): Promise<void> {
  const sysroot = Sysroot.open(opts.sysroot);
  const remote = opts.remoteName ?? 'fleet';
  if (t.repoUrl) ensureRemote(sysroot.repoPath, remote, new URL(t.repoUrl, server).href, opts.signVerify);
  else if (!listRemotes({ repo: sysroot.repoPath }).some((r) => r.name === remote)) {
    throw new StrataError('AGENT_STAGE_FAILED', `the server gave no repository URL and the sysroot has no remote '${remote}'; configure one with 'strata remote add ${remote} URL --repo ${sysroot.repoPath}'`, { remote });
  }
  await pull({ repo: sysroot.repoPath, remote, rev: t.commit });
  const repo = sysroot.repo();
  const list = sysroot.deployments();
  const booted = sysroot.booted(list, opts.booted) ?? list[0] ?? null;
  if (booted && !t.allowDowngrade && repo.hasObject(booted.checksum, 'commit') && repo.loadCommit(toChecksum(t.commit)).timestamp < repo.loadCommit(booted.checksum).timestamp) {
    throw new StrataError('DOWNGRADE_REFUSED', `the server asks for ${t.commit.slice(0, 12)}, older than the running ${booted.checksum.slice(0, 12)}, without allowDowngrade`, { commit: t.commit });
  }
  await deploy({ sysroot: opts.sysroot, booted: opts.booted, rev: t.commit, refspec: t.ref ? `${remote}:${t.ref}` : t.commit, stage: true });
}

function healthOfRow(d: DeploymentStatus): NonNullable<DeviceReport['deployments']>[number]['health'] {
  if (d.bad || d.health?.ok === false) return 'failed';
  if (d.triesLeft !== null) return 'pending';
  return d.health?.ok ? 'blessed' : null;
}

/** A report with what the device looks like now: booted and staged commits; after a boot also deployments, health, /etc digest and verify. */
async function buildReport(opts: AgentOptions, intent: ReportIntent): Promise<DeviceReport> {
  const t = intent.target;
  const report: DeviceReport = { state: intent.state };
  if (t) report.commit = t.commit;
  if (t?.rolloutId) report.rolloutId = t.rolloutId;
  const st = status({ sysroot: opts.sysroot, booted: opts.booted });
  const booted = st.deployments.find((d) => d.booted);
  const staged = st.deployments.find((d) => d.staged);
  if (booted) report.booted = { commit: booted.checksum, version: booted.version };
  if (staged) report.staged = { commit: staged.checksum };
  const details: string[] = intent.details ? [intent.details] : [];
  if (intent.full) {
    report.deployments = st.deployments
      .filter((d) => d.index !== null)
      .map((d) => ({ index: d.index as number, commit: d.checksum, version: d.version, booted: d.booted, default: d.default, rollback: d.rollback, pinned: d.pinned, staged: d.staged, health: healthOfRow(d) }));
    if (booted) {
      if (booted.health) report.health = { ok: booted.health.ok, failed: booted.health.failed.map((f) => f.name), at: booted.health.at };
      report.etcDigest = etcDigestOfDir(path.join(booted.path, 'etc'));
      if (!opts.noVerify) {
        const v = await verifyDeployment({ sysroot: opts.sysroot, booted: opts.booted, which: String(booted.index) });
        const count = (k: string) => v.differences.filter((x) => x.kind === k).length;
        report.verify = { ok: v.ok, modified: count('modified'), added: count('added'), removed: count('removed'), at: new Date().toISOString() };
      }
    }
    // What failed on the target, when the device is not running it (a fallback).
    const failedTarget = t && st.deployments.find((d) => d.checksum === t.commit && !d.booted && d.health && !d.health.ok);
    if (t && failedTarget?.health) details.push(`failed checks on ${t.commit.slice(0, 12)}: ${failedTarget.health.failed.map((f) => `${f.name} (${f.reason})`).join('; ')}`);
  }
  if (details.length) report.details = details.join('; ');
  return report;
}

/** Steps until `signal` aborts (or once): the service's main loop. Server refusals are logged and waited out. */
export async function agentRun(opts: AgentOptions & { once?: boolean; signal?: AbortSignal }): Promise<StepResult> {
  const log = opts.log ?? (() => undefined);
  for (;;) {
    let r: StepResult;
    try {
      r = await agentStep(opts);
    } catch (err) {
      if (opts.once || !isStrataError(err) || !['AGENT_REJECTED', 'COMMAND_FAILED', 'SYSROOT_LOCKED', 'HTTP_ERROR'].includes(err.code)) throw err;
      log(`strata agent: ${err.message}`);
      await sleep(configOf(opts).backoffMaxSeconds, opts.signal);
      if (opts.signal?.aborted) throw err;
      continue;
    }
    if (opts.once || r.rebooted || opts.signal?.aborted) return r;
    await sleep(Math.max(1, r.wait?.seconds ?? 1), opts.signal);
    if (opts.signal?.aborted) return r;
  }
}

function sleep(seconds: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, seconds * 1000);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** `strata agent enroll`: trades an enrollment token for a device id and token, kept in the state file (0600). */
export async function agentEnroll(opts: { server: string; enrollmentToken: string; name: string; labels?: Record<string, string>; machineId?: string; stateFile: string; force?: boolean; fetch?: typeof fetch }): Promise<{ deviceId: string; group: string | null; stateFile: string }> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(opts.name)) throw new StrataError('USAGE', `--name '${opts.name}' is not a device name: use letters, digits, '.', '_' and '-', at most 63`, { name: opts.name });
  const state = loadState(opts.stateFile);
  if (state.deviceId && !opts.force) {
    throw new StrataError('USAGE', `this device is already enrolled as ${state.deviceId} with ${state.server} (state ${opts.stateFile}); pass --force to enroll again`, { deviceId: state.deviceId });
  }
  const client = new DeviceClient({ server: opts.server, fetch: opts.fetch });
  const machineId = opts.machineId ?? readMachineId();
  const r = await client.enroll({ enrollmentToken: opts.enrollmentToken, name: opts.name, labels: opts.labels ?? {}, ...(machineId ? { machineId } : {}) });
  const fresh: AgentState = { ...state, server: client.server.href, deviceId: r.deviceId, token: r.token, group: r.group ?? null, phase: { name: 'idle' }, outbox: [], lock: 'none', backoff: { failures: 0, until: null }, nextPollAt: null, hold: null };
  saveState(opts.stateFile, fresh);
  return { deviceId: r.deviceId, group: r.group ?? null, stateFile: path.resolve(opts.stateFile) };
}

function readMachineId(): string | undefined {
  try {
    const id = fs.readFileSync('/etc/machine-id', 'utf8').trim();
    return /^[0-9a-f]{32}$/.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

/** `k=v,k2=v2` into labels. */
export function parseLabels(text: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  if (!text) return labels;
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new StrataError('USAGE', `--labels: '${part}' is not key=value`, { label: part });
    const k = part.slice(0, eq);
    if (!/^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/.test(k)) throw new StrataError('USAGE', `--labels: '${k}' is not a label key (letters, digits, '.', '_', '-', '/')`, { label: part });
    labels[k] = part.slice(eq + 1);
  }
  return labels;
}
