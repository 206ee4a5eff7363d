// The agent's brain, pure: given its state and what it just observed (the
// booted commit, the staged one, the health record, the answer of the last
// server call), it returns the next state, the reports to queue and ONE
// action to take. agent.ts performs the action, observes again and asks
// again, until the answer is to wait (or to reboot).
//
// The rules that matter most:
// - the reboot command runs at most once per update (rollout and commit),
//   recorded in the state before it runs;
// - after a reboot for X, booting anything but X is a rollback;
// - without the server the agent keeps working on the last instruction
//   (staging, and rebooting when its strategy needs no server), backing off
//   with jitter before calling again.

import type { NextAnswer, RebootWindow, ReportState } from './device-client.js';
import { type AgentState, type Outcome, type Phase, type Target, KEEP_HISTORY, updateKey } from './state.js';
import { inWindow } from './window.js';

export type Strategy = 'immediate' | 'window' | 'fleet-lock';
export const STRATEGIES: readonly Strategy[] = ['immediate', 'window', 'fleet-lock'];

export interface AgentConfig {
  strategy: Strategy;
  /** The configured reboot window; one the server sends with its instruction wins. */
  window: RebootWindow | null;
  /** How long to wait between polls when the server does not say. */
  pollSeconds: number;
  /** Back-off after the first failure to reach the server, doubled per failure up to `backoffMaxSeconds`. */
  backoffBaseSeconds: number;
  backoffMaxSeconds: number;
  /** How often an idle agent tells the server what it runs (`checking` with deployments, /etc digest, verify). */
  inventorySeconds: number;
}

export const DEFAULT_CONFIG: AgentConfig = { strategy: 'immediate', window: null, pollSeconds: 60, backoffBaseSeconds: 5, backoffMaxSeconds: 600, inventorySeconds: 6 * 3600 };

type Result = { ok: true } | { ok: false; error: string };

export interface Observation {
  /** Milliseconds since the epoch. */
  now: number;
  /** A number in [0, 1) for the back-off jitter. */
  random: number;
  /** The booted deployment's commit, and whether its boot entry is still being counted. */
  booted: { commit: string; counting: boolean } | null;
  /** The commit the next boot starts: a staged deployment, or a default that is not the booted one. */
  pending: string | null;
  /** The booted deployment's health record (left by `strata health run`). */
  health: { ok: boolean; at: string } | null;
  /** The reboot this agent asked for has not happened yet (its marker in /run is still there). */
  rebootPending: boolean;
  /** Reports queued earlier were sent (or the server could not be reached). */
  flush?: Result;
  /** The answer to `poll`. */
  next?: { ok: true; answer: NextAnswer } | { ok: false; error: string };
  /** The outcome of `stage`; `permanent` when retrying cannot help (a refused downgrade). */
  staged?: Result & { permanent?: boolean };
  /** The outcome of `acquire-lock`: refused by the server (`denied`) or not reached. */
  lock?: { ok: true } | { ok: false; error: string; denied: boolean };
  /** The outcome of `release-lock`. */
  released?: Result;
  /** The server was asked already in this step: one poll per step, whatever pollAfterSeconds says. */
  polled?: boolean;
}

/** A report to queue; agent.ts adds what the device looks like (deployments, /etc digest, verify, health). */
export interface ReportIntent {
  state: ReportState;
  /** The update it is about; null for an inventory. */
  target: Target | null;
  details?: string;
  /** Add deployments, health, /etc digest and verify (the post-boot states). */
  full: boolean;
}

export type AgentAction =
  | { kind: 'poll' }
  | { kind: 'stage'; target: Target }
  | { kind: 'acquire-lock' }
  | { kind: 'release-lock' }
  | { kind: 'reboot'; target: Target }
  | { kind: 'wait'; seconds: number; reason: string };

export interface Decision {
  state: AgentState;
  reports: ReportIntent[];
  action: AgentAction;
}

const iso = (ms: number) => new Date(ms).toISOString();
const ms = (t: string | null) => (t === null ? -Infinity : Date.parse(t));

/** The back-off before call number `failures + 1`: exponential, capped, with jitter in [half, full]. */
export function backoffSeconds(failures: number, random: number, config: Pick<AgentConfig, 'backoffBaseSeconds' | 'backoffMaxSeconds'>): number {
  const full = Math.min(config.backoffMaxSeconds, config.backoffBaseSeconds * 2 ** Math.max(0, Math.min(failures - 1, 30)));
  return full * (0.5 + 0.5 * Math.min(Math.max(random, 0), 1));
}

export function targetOf(answer: Extract<NextAnswer, { action: 'deploy' }>): Target {
  return {
    rolloutId: answer.rolloutId ?? null,
    releaseId: answer.releaseId ?? null,
    commit: answer.commit,
    version: answer.version ?? null,
    ref: answer.ref ?? null,
    repoUrl: answer.repoUrl ?? null,
    allowDowngrade: answer.allowDowngrade ?? false,
    window: answer.window ?? null,
  };
}

function phaseTarget(p: Phase): Target | null {
  return p.name === 'idle' ? null : p.target;
}

export function decideAgentStep(state: AgentState, obs: Observation, config: AgentConfig = DEFAULT_CONFIG): Decision {
  const s: AgentState = structuredClone(state);
  const reports: ReportIntent[] = [];
  const now = obs.now;
  const decision = (action: AgentAction): Decision => ({ state: s, reports, action });
  const serverDown = (): void => {
    s.backoff.failures += 1;
    s.backoff.until = iso(now + backoffSeconds(s.backoff.failures, obs.random, config) * 1000);
  };
  const serverUp = (): void => {
    s.backoff = { failures: 0, until: null };
  };
  const finish = (target: Target, outcome: Outcome, details?: string): void => {
    const key = updateKey(target);
    s.outcomes = [...s.outcomes.filter((o) => o.key !== key), { key, commit: target.commit, outcome, at: iso(now) }].slice(-KEEP_HISTORY);
    s.phase = { name: 'idle' };
    reports.push({ state: outcome, target, details, full: true });
    // The reboot slot goes back once the device is steady again; an unhealthy but uncounted boot is as steady as it gets.
    if (s.lock === 'held') s.lock = 'release';
  };

  // 1. What the last server calls said.
  if (obs.flush) {
    if (obs.flush.ok) serverUp();
    else serverDown();
  }
  if (obs.released) {
    if (obs.released.ok) {
      serverUp();
      s.lock = 'none';
    } else serverDown();
  }
  if (obs.lock) {
    if (obs.lock.ok) {
      serverUp();
      s.lock = 'held';
    } else if (obs.lock.denied) {
      serverUp();
      s.nextPollAt = iso(now + config.pollSeconds * 1000);
    } else serverDown();
  }
  if (obs.next) {
    if (!obs.next.ok) serverDown();
    else {
      serverUp();
      const answer = obs.next.answer;
      s.nextPollAt = iso(now + (answer.pollAfterSeconds ?? config.pollSeconds) * 1000);
      const t = answer.action === 'deploy' ? targetOf(answer) : null;
      forgetEndedOverrides(s, t);
      if (answer.action === 'none') s.hold = answer.reason;
      else {
        s.hold = null;
        takeInstruction(s, t as Target, obs, reports);
      }
    }
  }
  if (obs.staged && s.phase.name === 'staging') {
    const t = s.phase.target;
    if (obs.staged.ok) {
      s.phase = { name: 'staged', target: t };
      reports.push({ state: 'staged', target: t, full: false });
    } else if (obs.staged.permanent) {
      // Retrying cannot help: the update ends here, the server hears why.
      s.phase = { name: 'idle' };
      s.outcomes = [...s.outcomes, { key: updateKey(t), commit: t.commit, outcome: 'unhealthy' as Outcome, at: iso(now) }].slice(-KEEP_HISTORY);
      reports.push({ state: 'unhealthy', target: t, details: `could not stage ${t.commit.slice(0, 12)}: ${obs.staged.error}`, full: true });
    } else {
      const failures = s.phase.failures + 1;
      s.phase = { name: 'staging', target: t, failures, retryAt: iso(now + backoffSeconds(failures, obs.random, config) * 1000) };
      // Say it once, not on every retry.
      if (failures === 1) reports.push({ state: 'downloading', target: t, details: `download failed, retrying: ${obs.staged.error}`, full: false });
    }
  }

  if (!obs.booted) return decision({ kind: 'wait', seconds: config.pollSeconds, reason: 'no booted deployment' });
  const booted = obs.booted;
  const reachable = s.backoff.until === null || now >= ms(s.backoff.until);

  // 2. How the update in progress went: local facts, no server needed.
  const p = s.phase;
  if (p.name === 'rebooting') {
    if (obs.rebootPending) return decision({ kind: 'wait', seconds: config.pollSeconds, reason: 'reboot pending' });
    if (booted.commit === p.target.commit) {
      s.phase = { name: 'booted', target: p.target, since: p.at };
      reports.push({ state: 'booted', target: p.target, full: true });
    } else {
      finish(p.target, 'rolled-back', `rebooted for ${p.target.commit.slice(0, 12)} but booted ${booted.commit.slice(0, 12)}: the boot fell back`);
    }
  }
  const q = s.phase;
  if (q.name === 'booted' || q.name === 'unhealthy') {
    const fresh = obs.health !== null && (q.since === null || ms(obs.health.at) >= ms(q.since));
    if (booted.commit !== q.target.commit) {
      finish(q.target, 'rolled-back', `${q.target.commit.slice(0, 12)} failed and the bootloader fell back to ${booted.commit.slice(0, 12)}`);
    } else if (fresh && obs.health?.ok) {
      finish(q.target, 'healthy');
    } else if (fresh && q.name === 'booted') {
      if (booted.counting) {
        s.phase = { name: 'unhealthy', target: q.target, since: q.since };
        reports.push({ state: 'unhealthy', target: q.target, details: 'a required health check failed; the bootloader tries again or falls back', full: true });
      } else {
        finish(q.target, 'unhealthy', 'a required health check failed and the boot is not counted: no automatic rollback');
      }
    } else {
      return decision(withReleaseOrWait(s, reachable, { kind: 'wait', seconds: Math.min(config.pollSeconds, 30), reason: q.name === 'booted' ? 'waiting for health checks' : 'waiting for the fallback' }));
    }
  }

  // 3. Server calls owed or due. First, an idle device says what it runs (at start, then now and then), so the server knows devices no rollout touched.
  if (s.phase.name === 'idle' && now - ms(s.inventoryAt) >= config.inventorySeconds * 1000) {
    s.inventoryAt = iso(now);
    reports.push({ state: 'checking', target: null, full: true });
  }
  if (s.lock === 'release' && reachable) return decision({ kind: 'release-lock' });
  const r = s.phase;
  if (reachable && !obs.polled && now >= ms(s.nextPollAt)) return decision({ kind: 'poll' });

  // 4. The update in progress, on the last instruction.
  if (r.name === 'staging') {
    if (now >= ms(r.retryAt ?? null)) return decision({ kind: 'stage', target: r.target });
    return decision(waitUntil(s, now, ms(r.retryAt ?? null), 'retrying the download'));
  }
  if (r.name === 'staged') {
    const t = r.target;
    if (booted.commit === t.commit) {
      // Booted into it without this agent's reboot (someone else rebooted): judge it like any other boot.
      s.phase = { name: 'booted', target: t, since: null };
      reports.push({ state: 'booted', target: t, full: true });
      return decision({ kind: 'wait', seconds: 0, reason: 'booted the target' });
    }
    if (obs.pending !== t.commit) {
      s.phase = { name: 'staging', target: t, failures: 0 };
      return decision({ kind: 'stage', target: t });
    }
    if (s.hold !== null) return decision(waitUntil(s, now, Infinity, `server says ${s.hold}`));
    if (s.rebootedFor.some((x) => x.key === updateKey(t))) return decision(waitUntil(s, now, Infinity, 'already rebooted once for this update'));
    if (config.strategy === 'window') {
      const w = t.window ?? config.window;
      if (!w) return decision(waitUntil(s, now, Infinity, 'no reboot window (set --window)'));
      if (!inWindow(w, now)) return decision(waitUntil(s, now, now + 60_000, 'outside the reboot window'));
    }
    if (config.strategy === 'fleet-lock' && s.lock !== 'held') {
      if (reachable && !obs.lock) return decision({ kind: 'acquire-lock' });
      return decision(waitUntil(s, now, Infinity, obs.lock && !obs.lock.ok && obs.lock.denied ? `reboot slot refused: ${obs.lock.error}` : 'waiting for a reboot slot'));
    }
    s.rebootedFor = [...s.rebootedFor, { key: updateKey(t), commit: t.commit, at: iso(now) }].slice(-KEEP_HISTORY);
    s.phase = { name: 'rebooting', target: t, at: iso(now) };
    reports.push({ state: 'rebooting', target: t, full: false });
    return decision({ kind: 'reboot', target: t });
  }
  return decision(waitUntil(s, now, Infinity, s.hold ? `server says ${s.hold}` : 'idle'));
}

/** A wait until `until`, the next poll, or the end of the back-off, whichever comes first. */
function waitUntil(s: AgentState, now: number, until: number, reason: string): AgentAction {
  const next = Math.min(until, ms(s.nextPollAt), s.backoff.until === null ? Infinity : ms(s.backoff.until));
  return { kind: 'wait', seconds: Number.isFinite(next) ? Math.max(0, (next - now) / 1000) : 60, reason };
}

function withReleaseOrWait(s: AgentState, reachable: boolean, wait: AgentAction): AgentAction {
  return s.lock === 'release' && reachable ? { kind: 'release-lock' } : wait;
}

/**
 * A one-device rollback (no rollout id) is one update for as long as the
 * server keeps asking for it; once it asks for something else, a later
 * rollback to the same commit is a new update, not one already done.
 */
function forgetEndedOverrides(s: AgentState, asked: Target | null): void {
  const keep = new Set<string>();
  if (asked) keep.add(updateKey(asked));
  const current = phaseTarget(s.phase);
  if (current) keep.add(updateKey(current));
  const ended = (key: string) => key.startsWith('-:') && !keep.has(key);
  s.rebootedFor = s.rebootedFor.filter((x) => !ended(x.key));
  s.outcomes = s.outcomes.filter((x) => !ended(x.key));
}

/** A deploy instruction from the server: start it, refresh the one in progress, or leave it for later. */
function takeInstruction(s: AgentState, t: Target, obs: Observation, reports: ReportIntent[]): void {
  const key = updateKey(t);
  // Finished (whatever the outcome) or rebooted for: never started again.
  if (s.outcomes.some((o) => o.key === key)) return;
  const p = s.phase;
  // A reboot's outcome is judged before anything new starts.
  if (p.name === 'rebooting' || p.name === 'booted' || p.name === 'unhealthy') return;
  const current = phaseTarget(p);
  if (current && current.commit === t.commit) {
    // The same commit (perhaps with new rollout details): keep going.
    if (updateKey(current) === key || !s.rebootedFor.some((x) => x.key === key)) s.phase = { ...p, target: t } as Phase;
    return;
  }
  if (obs.booted && obs.booted.commit === t.commit) {
    // Already running it: judge the running boot.
    s.phase = { name: 'booted', target: t, since: null };
    reports.push({ state: 'booted', target: t, full: true });
    return;
  }
  s.phase = { name: 'staging', target: t, failures: 0 };
  reports.push({ state: 'downloading', target: t, full: false });
}
