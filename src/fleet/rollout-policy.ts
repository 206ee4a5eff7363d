// The rollout policy as pure functions: which wave a device belongs to, whether
// a maintenance window is open at an instant, when a rollout pauses itself or
// moves to its next wave, and what a device should do now. Nothing here reads
// the database or the clock; the routes gather the facts and apply the result.

import { createHash } from 'node:crypto';

export const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Day = (typeof DAYS)[number];

export interface MaintenanceWindow {
  /** Days on which the window opens (a window past midnight closes the next day). */
  days: Day[];
  /** "HH:MM", 24-hour, local time of `timeZone`. */
  start: string;
  end: string;
  /** An IANA time zone, e.g. "Europe/Paris". */
  timeZone: string;
}

export interface WaveState {
  /** Cumulative share of the group, 0 < percent <= 100. */
  percent: number;
  soakSeconds: number;
  startedAt: string | null;
  /** When every device of the wave had finished (healthy or failed). */
  completedAt: string | null;
  /** Failures an admin accepted by resuming; they no longer count against the threshold. */
  acknowledgedFailures: number;
}

export type RolloutState = 'active' | 'paused' | 'completed' | 'aborted' | 'rolled-back';

/** Buckets per group: a device is in a wave of p% when its bucket < p * 100. */
export const BUCKETS = 10_000;

/** A stable bucket in [0, 10000) from the device id (the first 32 bits of its SHA-256). */
export function bucketOf(deviceId: string): number {
  return createHash('sha256').update(deviceId).digest().readUInt32BE(0) % BUCKETS;
}

/** The bucket bound of a wave: devices with bucket < bound are in it. */
export function waveBound(percent: number): number {
  return Math.round(percent * (BUCKETS / 100));
}

export function inWave(bucket: number, percent: number): boolean {
  return bucket < waveBound(percent);
}

/** The first wave (index) whose share covers the bucket. Waves are cumulative and ascending. */
export function waveOfBucket(bucket: number, waves: readonly { percent: number }[]): number {
  const i = waves.findIndex((w) => inWave(bucket, w.percent));
  return i < 0 ? waves.length : i;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function localParts(t: Date, timeZone: string): { day: number; minutes: number } {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(timeZone, f);
  }
  let day = 0;
  let hour = 0;
  let minute = 0;
  for (const p of f.formatToParts(t)) {
    if (p.type === 'weekday') day = DAYS.indexOf(p.value.toLowerCase().slice(0, 3) as Day);
    else if (p.type === 'hour') hour = Number(p.value);
    else if (p.type === 'minute') minute = Number(p.value);
  }
  return { day, minutes: hour * 60 + minute };
}

export function isValidTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function toMinutes(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return h * 60 + m;
}

/**
 * Whether the window is open at `t`. start == end means the whole listed day;
 * start > end runs past midnight into the next day.
 */
export function windowOpen(w: MaintenanceWindow | null | undefined, t: Date): boolean {
  if (!w) return true;
  const { day, minutes } = localParts(t, w.timeZone);
  const start = toMinutes(w.start);
  const end = toMinutes(w.end);
  const listed = (d: number): boolean => w.days.includes(DAYS[(d + 7) % 7]);
  if (start === end) return listed(day);
  if (start < end) return listed(day) && minutes >= start && minutes < end;
  return (listed(day) && minutes >= start) || (listed(day - 1) && minutes < end);
}

export interface WaveStats {
  /** Devices of the group inside the current (cumulative) wave. */
  devicesInWave: number;
  /** Of those, how many finished this rollout: healthy, unhealthy or rolled back (or already on the commit). */
  finished: number;
  /** Of those, how many reported unhealthy or rolled-back for this rollout. */
  failed: number;
}

export interface RolloutFacts {
  state: RolloutState;
  currentWave: number;
  waves: WaveState[];
  failureThreshold: number;
}

export interface RolloutChange {
  state: RolloutState;
  currentWave: number;
  waves: WaveState[];
  pausedReason: string | null;
  /** A failure-rate sample worth recording (the rate changed). */
  failureRate: number;
  changed: boolean;
}

export function failureRate(stats: WaveStats, acknowledged = 0): number {
  if (stats.devicesInWave <= 0) return 0;
  return Math.max(0, stats.failed - acknowledged) / stats.devicesInWave;
}

/** Whether the failures cross the threshold (strictly above it). */
export function shouldPause(stats: WaveStats, threshold: number, acknowledged = 0): boolean {
  return failureRate(stats, acknowledged) > threshold;
}

const pct = (x: number): string => `${Math.round(x * 1000) / 10}%`;

/**
 * One step of an active rollout given the current wave's figures: pause when
 * failures cross the threshold, mark the wave complete when every device
 * finished, move on once its soak time has passed, complete after the last.
 */
export function evaluateRollout(r: RolloutFacts, stats: WaveStats, now: Date): RolloutChange {
  const waves = r.waves.map((w) => ({ ...w }));
  const rate = failureRate(stats, waves[r.currentWave]?.acknowledgedFailures ?? 0);
  const same: RolloutChange = { state: r.state, currentWave: r.currentWave, waves, pausedReason: null, failureRate: rate, changed: false };
  if (r.state !== 'active') return same;
  const wave = waves[r.currentWave];
  if (shouldPause(stats, r.failureThreshold, wave.acknowledgedFailures)) {
    const failed = stats.failed - wave.acknowledgedFailures;
    return {
      ...same,
      state: 'paused',
      pausedReason: `failure rate ${pct(rate)} in wave ${r.currentWave + 1} (${failed} of ${stats.devicesInWave} devices unhealthy or rolled back) crossed the threshold of ${pct(r.failureThreshold)}`,
      changed: true,
    };
  }
  let changed = false;
  if (wave.completedAt === null && stats.finished >= stats.devicesInWave) {
    wave.completedAt = now.toISOString();
    changed = true;
  }
  if (wave.completedAt !== null && now.getTime() - Date.parse(wave.completedAt) >= wave.soakSeconds * 1000) {
    if (r.currentWave === waves.length - 1) return { ...same, state: 'completed', changed: true };
    const next = r.currentWave + 1;
    waves[next].startedAt = now.toISOString();
    return { ...same, currentWave: next, changed: true };
  }
  return { ...same, changed };
}

export type NoneReason = 'up-to-date' | 'not-in-wave' | 'outside-window' | 'concurrency' | 'paused' | 'no-rollout' | 'held';

export type DeviceRolloutState = 'claimed' | 'checking' | 'downloading' | 'staged' | 'rebooting' | 'booted' | 'healthy' | 'unhealthy' | 'rolled-back';

export const FAILED_STATES: readonly string[] = ['unhealthy', 'rolled-back'];
export const FINISHED_STATES: readonly string[] = ['healthy', 'unhealthy', 'rolled-back'];

export interface NextFacts {
  now: Date;
  device: { bucket: number; bootedCommit: string | null; overrideCommit: string | null };
  /** The group's newest rollout, or null. */
  rollout: null | {
    state: RolloutState;
    kind: 'forward' | 'rollback';
    currentWave: number;
    waves: readonly { percent: number }[];
    maxConcurrent: number;
    window: MaintenanceWindow | null;
    commit: string;
  };
  /** This device's progress in that rollout, if it started. */
  deviceState: string | null;
  /** Devices holding an update slot of the rollout now (claimed, not finished, not stale). */
  inProgress: number;
}

export type NextDecision =
  | { action: 'deploy'; commit: string; allowDowngrade: boolean; claim: boolean; override: boolean }
  | { action: 'none'; reason: NoneReason };

/** What a device should do now; `claim` means take one of the rollout's update slots. */
export function nextAction(f: NextFacts): NextDecision {
  const { device, rollout } = f;
  if (device.overrideCommit && device.bootedCommit !== device.overrideCommit) {
    return { action: 'deploy', commit: device.overrideCommit, allowDowngrade: true, claim: false, override: true };
  }
  if (device.overrideCommit) return { action: 'none', reason: 'held' };
  if (!rollout || rollout.state === 'aborted' || rollout.state === 'rolled-back') return { action: 'none', reason: 'no-rollout' };
  if (device.bootedCommit === rollout.commit || f.deviceState === 'healthy') return { action: 'none', reason: 'up-to-date' };
  if (f.deviceState !== null && FAILED_STATES.includes(f.deviceState)) return { action: 'none', reason: 'held' };
  if (rollout.state === 'paused') return { action: 'none', reason: 'paused' };
  const allowDowngrade = rollout.kind === 'rollback';
  // A device already holding a slot keeps getting the same answer.
  if (f.deviceState !== null) return { action: 'deploy', commit: rollout.commit, allowDowngrade, claim: false, override: false };
  if (rollout.state === 'active' && !inWave(device.bucket, rollout.waves[rollout.currentWave].percent)) return { action: 'none', reason: 'not-in-wave' };
  if (!windowOpen(rollout.window, f.now)) return { action: 'none', reason: 'outside-window' };
  if (f.inProgress >= rollout.maxConcurrent) return { action: 'none', reason: 'concurrency' };
  return { action: 'deploy', commit: rollout.commit, allowDowngrade, claim: true, override: false };
}
