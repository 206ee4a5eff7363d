// The agent's state file: who the device is (server, id, token), the last
// instruction it works on, where it is in that update, which commits it has
// already rebooted for, and the reports it still owes the server. Written
// atomically (temp file, fsync, rename) with mode 0600 because it holds the
// device token; a crash leaves the previous state or the new one, never half.

import fs from 'node:fs';
import path from 'node:path';
import { StrataError, ioError } from '../../errors.js';
import { writeFileAtomic } from '../../repo/repo.js';
import type { DeviceReport, RebootWindow } from './device-client.js';

export const STATE_VERSION = 1;
export const DEFAULT_STATE_FILE = '/var/lib/strata/agent.json';

/** What the server asked for: one update of one device. */
export interface Target {
  rolloutId: string | null;
  releaseId: string | null;
  commit: string;
  version: string | null;
  ref: string | null;
  repoUrl: string | null;
  allowDowngrade: boolean;
  window: RebootWindow | null;
}

/** Where the agent is in the update of `target`. */
export type Phase =
  | { name: 'idle' }
  /** The commit must be pulled and staged (again, after a failure). */
  | { name: 'staging'; target: Target; failures: number; retryAt?: string }
  /** Staged (or finalized and pending); waiting for permission to reboot. */
  | { name: 'staged'; target: Target }
  /** The reboot command ran for `target` at `at`; the next boot tells how it went. */
  | { name: 'rebooting'; target: Target; at: string }
  /** Booted into the target; waiting for a health record newer than `since`. */
  | { name: 'booted'; target: Target; since: string | null }
  /** The target failed its checks while boot counting still runs: a fallback may follow. */
  | { name: 'unhealthy'; target: Target; since: string | null };

export type Outcome = 'healthy' | 'unhealthy' | 'rolled-back';

export interface AgentState {
  version: typeof STATE_VERSION;
  server: string | null;
  deviceId: string | null;
  token: string | null;
  group: string | null;
  phase: Phase;
  /** Updates (rollout and commit) the agent ran the reboot command for: never again for the same one. */
  rebootedFor: { key: string; commit: string; at: string }[];
  /** How finished updates ended, newest last; an update seen here is not started again. */
  outcomes: { key: string; commit: string; outcome: Outcome; at: string }[];
  /** FleetLock: `held` after pre-reboot succeeded; `release` while steady-state is still owed. */
  lock: 'none' | 'held' | 'release';
  /** Reports not yet accepted by the server, oldest first. */
  outbox: DeviceReport[];
  /** Consecutive failures to reach the server, and when to try again (ISO time). */
  backoff: { failures: number; until: string | null };
  /** When to ask the server again (ISO time); null: now. */
  nextPollAt: string | null;
  /** Why the server, when last asked, said not to deploy now ('paused', 'held'…); null after a deploy answer. */
  hold: string | null;
  /** When the agent last sent a full inventory (`checking`) while idle; null: never. */
  inventoryAt: string | null;
}

/** Bounds on the lists, so a device that runs for years keeps a small file. */
export const KEEP_HISTORY = 50;
export const KEEP_OUTBOX = 100;

export function emptyState(): AgentState {
  return {
    version: STATE_VERSION,
    server: null,
    deviceId: null,
    token: null,
    group: null,
    phase: { name: 'idle' },
    rebootedFor: [],
    outcomes: [],
    lock: 'none',
    outbox: [],
    backoff: { failures: 0, until: null },
    nextPollAt: null,
    hold: null,
    inventoryAt: null,
  };
}

/** One update: the same commit offered again by another rollout is another update. */
export function updateKey(t: { rolloutId: string | null; commit: string }): string {
  return `${t.rolloutId ?? '-'}:${t.commit}`;
}

/** Reads the state file; a missing file is a fresh agent. */
export function loadState(file: string): AgentState {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
    throw ioError(err, 'read the agent state', file);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new StrataError('AGENT_STATE_INVALID', `agent state ${file} is not valid JSON; move it away to start over (the device must then enroll again)`, { file });
  }
  const s = data as Partial<AgentState> | null;
  if (!s || typeof s !== 'object' || s.version !== STATE_VERSION || typeof s.phase !== 'object' || s.phase === null || typeof s.phase.name !== 'string') {
    throw new StrataError('AGENT_STATE_INVALID', `agent state ${file} is not a version ${STATE_VERSION} agent state; move it away to start over`, { file });
  }
  // Fields added later get their defaults, so an older file still loads.
  return { ...emptyState(), ...s } as AgentState;
}

/** Writes the state crash-safely, readable by root only (it holds the device token). */
export function saveState(file: string, state: AgentState): void {
  const dir = path.dirname(path.resolve(file));
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    // The temp file is created 0600 and renamed over the old one: the token is never readable by others.
    writeFileAtomic(file, JSON.stringify(state, null, 2) + '\n', 0o600, dir);
  } catch (err) {
    throw err instanceof StrataError ? err : ioError(err, 'write the agent state', file);
  }
}
