// decideAgentStep is pure: these tests walk it through updates by hand
// (examples) and through random worlds (fast-check properties).

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { type AgentConfig, type Decision, type Observation, DEFAULT_CONFIG, backoffSeconds, decideAgentStep } from '../../src/fleet/agent/decide.js';
import { type AgentState, emptyState, updateKey } from '../../src/fleet/agent/state.js';
import type { NextAnswer } from '../../src/fleet/agent/device-client.js';
import { inWindow, parseWindow } from '../../src/fleet/agent/window.js';

const V1 = '1'.repeat(64);
const V2 = '2'.repeat(64);
const V3 = '3'.repeat(64);
const T0 = Date.parse('2026-03-02T10:00:00Z'); // a Monday

const deployAnswer = (commit: string, rolloutId = 'ro_1', extra: Partial<Extract<NextAnswer, { action: 'deploy' }>> = {}): NextAnswer => ({
  action: 'deploy', rolloutId, releaseId: 'rel_1', commit, version: commit === V2 ? '2.0' : '1.0', ref: 'os/stable', repoUrl: 'http://repo/', allowDowngrade: false, pollAfterSeconds: 30, ...extra,
});
const noneAnswer = (reason: string): NextAnswer => ({ action: 'none', reason, pollAfterSeconds: 30 });

function obs(partial: Partial<Observation> = {}): Observation {
  return { now: T0, random: 0.5, booted: { commit: V1, counting: false }, pending: null, health: { ok: true, at: '2026-03-01T00:00:00Z' }, rebootPending: false, ...partial };
}

function enrolled(): AgentState {
  return { ...emptyState(), server: 'http://fleet/', deviceId: 'dev_1', token: 't', group: 'edge', inventoryAt: new Date(T0).toISOString() };
}

describe('decideAgentStep: one update, by hand', () => {
  it('polls, stages, reboots once, reports booted and healthy, then idles', () => {
    const c = DEFAULT_CONFIG;
    let s = enrolled();
    let d = decideAgentStep(s, obs(), c);
    expect(d.action).toEqual({ kind: 'poll' });
    d = decideAgentStep(d.state, obs({ next: { ok: true, answer: deployAnswer(V2) } }), c);
    expect(d.reports.map((r) => r.state)).toEqual(['downloading']);
    expect(d.action).toMatchObject({ kind: 'stage', target: { commit: V2, rolloutId: 'ro_1' } });
    d = decideAgentStep(d.state, obs({ staged: { ok: true }, pending: V2 }), c);
    expect(d.reports.map((r) => r.state)).toEqual(['staged', 'rebooting']);
    expect(d.action).toMatchObject({ kind: 'reboot', target: { commit: V2 } });
    expect(d.state.phase.name).toBe('rebooting');
    expect(d.state.rebootedFor.map((r) => r.key)).toEqual([updateKey({ rolloutId: 'ro_1', commit: V2 })]);
    // Still the same boot (the reboot has not happened): wait, never reboot again.
    s = d.state;
    d = decideAgentStep(s, obs({ now: T0 + 1000, pending: V2, rebootPending: true }), c);
    expect(d.action).toMatchObject({ kind: 'wait', reason: 'reboot pending' });
    // Booted into v2, health not run yet.
    d = decideAgentStep(s, obs({ now: T0 + 60_000, booted: { commit: V2, counting: true }, health: null }), c);
    expect(d.reports.map((r) => r.state)).toEqual(['booted']);
    expect(d.action).toMatchObject({ kind: 'wait', reason: 'waiting for health checks' });
    // Health record from this boot: healthy; an older record would not count.
    d = decideAgentStep(d.state, obs({ now: T0 + 70_000, booted: { commit: V2, counting: false }, health: { ok: true, at: new Date(T0 + 65_000).toISOString() } }), c);
    expect(d.reports.map((r) => ({ state: r.state, full: r.full }))).toEqual([{ state: 'healthy', full: true }]);
    expect(d.state.phase).toEqual({ name: 'idle' });
    expect(d.state.outcomes.map((o) => o.outcome)).toEqual(['healthy']);
  });

  it('an idle agent reports what it runs at its first step and then every inventorySeconds, not while updating', () => {
    const c = DEFAULT_CONFIG;
    let d = decideAgentStep({ ...enrolled(), inventoryAt: null }, obs(), c);
    expect(d.reports).toEqual([{ state: 'checking', target: null, full: true }]);
    d = decideAgentStep(d.state, obs({ now: T0 + 1000, next: { ok: true, answer: noneAnswer('up-to-date') } }), c);
    expect(d.reports).toEqual([]);
    d = decideAgentStep(d.state, obs({ now: T0 + c.inventorySeconds * 1000 }), c);
    expect(d.reports.map((r) => r.state)).toEqual(['checking']);
    const busy: AgentState = { ...enrolled(), inventoryAt: null, phase: { name: 'staged', target: targetV2() } };
    expect(decideAgentStep(busy, obs({ pending: V2 }), c).reports.map((r) => r.state)).not.toContain('checking');
  });

  it('a one-device rollback (no rollout id) is done once while the server asks; asked again later, it is a new update', () => {
    const c = DEFAULT_CONFIG;
    const override = deployAnswer(V1, 'x', { rolloutId: null, releaseId: null, allowDowngrade: true });
    const key = updateKey({ rolloutId: null, commit: V1 });
    // Running v2; the admin sends it back to v1: staged, rebooted, healthy.
    let d = decideAgentStep(enrolled(), obs({ booted: { commit: V2, counting: false }, next: { ok: true, answer: override } }), c);
    expect(d.action.kind).toBe('stage');
    d = decideAgentStep(d.state, obs({ booted: { commit: V2, counting: false }, pending: V1, staged: { ok: true } }), c);
    expect(d.action.kind).toBe('reboot');
    d = decideAgentStep(d.state, obs({ now: T0 + 10_000, health: { ok: true, at: new Date(T0 + 9000).toISOString() } }), c);
    expect(d.state.outcomes.map((o) => o.key)).toEqual([key]);
    // While the server still says so, nothing more happens.
    d = decideAgentStep(d.state, obs({ now: T0 + 20_000, next: { ok: true, answer: override } }), c);
    expect(d.action.kind).toBe('wait');
    // Later: v2 again (a rollout), then another rollback to v1: it is done again.
    d = decideAgentStep(d.state, obs({ now: T0 + 30_000, next: { ok: true, answer: noneAnswer('up-to-date') } }), c);
    expect(d.state.outcomes.map((o) => o.key)).toEqual([]);
    d = decideAgentStep(d.state, obs({ now: T0 + 40_000, booted: { commit: V2, counting: false }, next: { ok: true, answer: override } }), c);
    expect(d.action.kind).toBe('stage');
  });

  it('a health record older than the reboot is not taken for this boot', () => {
    const s: AgentState = { ...enrolled(), phase: { name: 'booted', target: targetV2(), since: new Date(T0).toISOString() } };
    const d = decideAgentStep(s, obs({ booted: { commit: V2, counting: true }, health: { ok: false, at: new Date(T0 - 1000).toISOString() } }));
    expect(d.reports).toEqual([]);
    expect(d.action).toMatchObject({ kind: 'wait' });
  });

  it('booting the old commit after rebooting for the new one reports rolled-back and gives the slot back', () => {
    const s: AgentState = { ...enrolled(), lock: 'held', phase: { name: 'rebooting', target: targetV2(), at: new Date(T0).toISOString() } };
    const d = decideAgentStep(s, obs({ now: T0 + 120_000 }), { ...DEFAULT_CONFIG, strategy: 'fleet-lock' });
    expect(d.reports.map((r) => r.state)).toEqual(['rolled-back']);
    expect(d.state.lock).toBe('release');
    expect(d.action).toEqual({ kind: 'release-lock' });
    const after = decideAgentStep(d.state, obs({ now: T0 + 121_000, released: { ok: true } }), { ...DEFAULT_CONFIG, strategy: 'fleet-lock' });
    expect(after.state.lock).toBe('none');
  });

  it('unhealthy while counted waits for the fallback, then reports rolled-back; the server offering it again starts nothing', () => {
    const since = new Date(T0).toISOString();
    let s: AgentState = { ...enrolled(), phase: { name: 'booted', target: targetV2(), since } };
    let d = decideAgentStep(s, obs({ now: T0 + 5000, booted: { commit: V2, counting: true }, health: { ok: false, at: new Date(T0 + 4000).toISOString() } }));
    expect(d.reports.map((r) => r.state)).toEqual(['unhealthy']);
    expect(d.state.phase.name).toBe('unhealthy');
    d = decideAgentStep(d.state, obs({ now: T0 + 9000, booted: { commit: V2, counting: true }, health: { ok: false, at: new Date(T0 + 8000).toISOString() } }));
    expect(d.reports).toEqual([]);
    d = decideAgentStep(d.state, obs({ now: T0 + 20_000 }));
    expect(d.reports.map((r) => r.state)).toEqual(['rolled-back']);
    s = d.state;
    d = decideAgentStep(s, obs({ now: T0 + 30_000, next: { ok: true, answer: deployAnswer(V2) } }));
    expect(d.state.phase).toEqual({ name: 'idle' });
    expect(d.action.kind).toBe('wait');
  });

  it('unhealthy and not counted: the update ends unhealthy (no fallback will come)', () => {
    const s: AgentState = { ...enrolled(), phase: { name: 'booted', target: targetV2(), since: new Date(T0).toISOString() } };
    const d = decideAgentStep(s, obs({ now: T0 + 5000, booted: { commit: V2, counting: false }, health: { ok: false, at: new Date(T0 + 4000).toISOString() } }));
    expect(d.reports.map((r) => r.state)).toEqual(['unhealthy']);
    expect(d.state.phase).toEqual({ name: 'idle' });
  });

  it('fleet-lock: asks for a slot, waits when refused, reboots once granted', () => {
    const c: AgentConfig = { ...DEFAULT_CONFIG, strategy: 'fleet-lock' };
    const s: AgentState = { ...enrolled(), nextPollAt: new Date(T0 + 30_000).toISOString(), phase: { name: 'staged', target: targetV2() } };
    let d = decideAgentStep(s, obs({ pending: V2 }), c);
    expect(d.action).toEqual({ kind: 'acquire-lock' });
    d = decideAgentStep(d.state, obs({ pending: V2, lock: { ok: false, denied: true, error: 'no slot' } }), c);
    expect(d.action).toMatchObject({ kind: 'wait' });
    expect(d.state.lock).toBe('none');
    d = decideAgentStep(d.state, obs({ now: T0 + 61_000, pending: V2, next: { ok: true, answer: deployAnswer(V2) } }), c);
    expect(d.action).toEqual({ kind: 'acquire-lock' });
    d = decideAgentStep(d.state, obs({ now: T0 + 61_000, pending: V2, lock: { ok: true } }), c);
    expect(d.state.lock).toBe('held');
    expect(d.action.kind).toBe('reboot');
  });

  it('window: waits outside the window, reboots inside it; a window from the server wins', () => {
    const c: AgentConfig = { ...DEFAULT_CONFIG, strategy: 'window', window: parseWindow('02:00-05:00') };
    const s: AgentState = { ...enrolled(), nextPollAt: new Date(T0 + 3_600_000 * 24).toISOString(), phase: { name: 'staged', target: targetV2() } };
    expect(decideAgentStep(s, obs({ pending: V2 }), c).action).toMatchObject({ kind: 'wait', reason: 'outside the reboot window' });
    expect(decideAgentStep(s, obs({ pending: V2, now: Date.parse('2026-03-03T03:00:00Z') }), c).action.kind).toBe('reboot');
    const withServerWindow: AgentState = { ...s, phase: { name: 'staged', target: { ...targetV2(), window: { start: '09:00', end: '11:00' } } } };
    expect(decideAgentStep(withServerWindow, obs({ pending: V2 }), c).action.kind).toBe('reboot');
  });

  it('server down: backs off with jitter, capped, and still reboots on the stored instruction', () => {
    const c = DEFAULT_CONFIG;
    let s: AgentState = { ...enrolled(), phase: { name: 'staged', target: targetV2() } };
    let d = decideAgentStep(s, obs({ pending: V2, next: { ok: false, error: 'ECONNREFUSED' } }), c);
    expect(d.state.backoff.failures).toBe(1);
    expect(Date.parse(d.state.backoff.until!) - T0).toBe(backoffSeconds(1, 0.5, c) * 1000);
    expect(d.action.kind).toBe('reboot');
    // Many failures: never more than the cap.
    s = { ...enrolled() };
    for (let i = 0; i < 40; i++) s = decideAgentStep(s, obs({ now: T0 + i, next: { ok: false, error: 'down' } }), c).state;
    expect(Date.parse(s.backoff.until!) - (T0 + 39)).toBeLessThanOrEqual(c.backoffMaxSeconds * 1000);
    // While backing off it does not call; afterwards it polls and a success resets the count.
    expect(decideAgentStep(s, obs({ now: T0 + 40 }), c).action.kind).toBe('wait');
    d = decideAgentStep(s, obs({ now: T0 + 3_600_000 }), c);
    expect(d.action.kind).toBe('poll');
    d = decideAgentStep(d.state, obs({ now: T0 + 3_600_000, next: { ok: true, answer: noneAnswer('up-to-date') } }), c);
    expect(d.state.backoff).toEqual({ failures: 0, until: null });
  });

  it('a reachable server saying none holds the reboot of a staged update', () => {
    const s: AgentState = { ...enrolled(), phase: { name: 'staged', target: targetV2() } };
    const d = decideAgentStep(s, obs({ pending: V2, next: { ok: true, answer: noneAnswer('paused') } }));
    expect(d.action).toMatchObject({ kind: 'wait', reason: 'server says paused' });
  });

  it('a failed download is reported once and retried after a back-off; a refused downgrade ends the update', () => {
    let s: AgentState = { ...enrolled(), nextPollAt: new Date(T0 + 600_000).toISOString(), phase: { name: 'staging', target: targetV2(), failures: 0 } };
    let d = decideAgentStep(s, obs({ staged: { ok: false, error: 'HTTP 503' } }));
    expect(d.reports.map((r) => [r.state, r.details])).toEqual([['downloading', 'download failed, retrying: HTTP 503']]);
    expect(d.action.kind).toBe('wait');
    d = decideAgentStep(d.state, obs({ now: T0 + 100_000 }));
    expect(d.action.kind).toBe('stage');
    d = decideAgentStep(d.state, obs({ now: T0 + 100_000, staged: { ok: false, error: 'again' } }));
    expect(d.reports).toEqual([]);
    s = { ...enrolled(), phase: { name: 'staging', target: targetV2(), failures: 0 } };
    d = decideAgentStep(s, obs({ staged: { ok: false, error: 'older', permanent: true } }));
    expect(d.reports.map((r) => r.state)).toEqual(['unhealthy']);
    expect(d.state.phase.name).toBe('idle');
  });

  it('a new commit while one is staged replaces it; the server naming the booted commit is judged without a reboot', () => {
    let s: AgentState = { ...enrolled(), phase: { name: 'staged', target: targetV2() } };
    let d = decideAgentStep(s, obs({ pending: V2, next: { ok: true, answer: deployAnswer(V3, 'ro_2') } }));
    expect(d.action).toMatchObject({ kind: 'stage', target: { commit: V3 } });
    s = enrolled();
    d = decideAgentStep(s, obs({ next: { ok: true, answer: deployAnswer(V1, 'ro_back', { allowDowngrade: true }) } }));
    expect(d.reports.map((r) => r.state)).toEqual(['booted', 'healthy']);
    expect(d.state.rebootedFor).toEqual([]);
  });
});

function targetV2() {
  return { rolloutId: 'ro_1', releaseId: 'rel_1', commit: V2, version: '2.0', ref: 'os/stable', repoUrl: 'http://repo/', allowDowngrade: false, window: null };
}

describe('reboot windows', () => {
  it('same-day, overnight and time-zoned windows', () => {
    expect(inWindow(parseWindow('02:00-05:00'), Date.parse('2026-03-02T04:59:00Z'))).toBe(true);
    expect(inWindow(parseWindow('02:00-05:00'), Date.parse('2026-03-02T05:00:00Z'))).toBe(false);
    // Overnight, Friday night into Saturday: belongs to Friday.
    const w = parseWindow('fri 23:00-02:00');
    expect(inWindow(w, Date.parse('2026-03-06T23:30:00Z'))).toBe(true);
    expect(inWindow(w, Date.parse('2026-03-07T01:30:00Z'))).toBe(true);
    expect(inWindow(w, Date.parse('2026-03-08T01:30:00Z'))).toBe(false);
    // 03:00 in Paris is 02:00 UTC in March (CET).
    expect(inWindow(parseWindow('mon 03:00-04:00 Europe/Paris'), Date.parse('2026-03-02T02:30:00Z'))).toBe(true);
    expect(inWindow(parseWindow('mon 03:00-04:00 Europe/Paris'), Date.parse('2026-03-02T03:30:00Z'))).toBe(false);
  });

  it('bad windows are one clear usage error', () => {
    for (const bad of ['', '2-5', 'funday 02:00-05:00', '25:00-26:00', 'mon 02:00-03:00 Mars/Olympus', 'mon tue 02:00-03:00']) {
      expect(() => parseWindow(bad), bad).toThrow(expect.objectContaining({ code: 'USAGE' }));
    }
  });
});

// ---- properties over random worlds ----

const COMMITS = [V1, V2, V3];

/** One event the world can throw at the agent between decisions. */
const eventArb = fc.record({
  dt: fc.integer({ min: 0, max: 400_000 }),
  random: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
  answer: fc.oneof(
    fc.constant(null),
    fc.constant('down' as const),
    fc.record({ commit: fc.constantFrom(...COMMITS), rollout: fc.constantFrom('ro_a', 'ro_b') }),
    fc.constantFrom('paused', 'up-to-date', 'held'),
  ),
  stageOk: fc.boolean(),
  lockOk: fc.constantFrom<'granted' | 'denied' | 'down'>('granted', 'denied', 'down'),
  /** Whether the world boots after a reboot, and what: the target or a fallback. */
  bootsTarget: fc.boolean(),
  healthOk: fc.boolean(),
  counting: fc.boolean(),
  healthRuns: fc.boolean(),
});

type WorldEvent = typeof eventArb extends fc.Arbitrary<infer T> ? T : never;

interface World {
  booted: string;
  pending: string | null;
  health: { ok: boolean; at: string } | null;
  rebootPending: boolean;
  counting: boolean;
}

/**
 * Runs the agent against a random world: the world answers each action
 * (poll, stage, lock) as the event says, and a reboot boots the target or
 * falls back. Returns every action and report with the state they came from.
 */
function simulate(config: AgentConfig, events: WorldEvent[]) {
  let state = enrolled();
  let now = T0;
  const world: World = { booted: V1, pending: null, health: { ok: true, at: new Date(T0 - 1).toISOString() }, rebootPending: false, counting: false };
  const trace: { before: AgentState; decision: Decision; now: number; obs: Observation }[] = [];
  let result: Partial<Observation> = {};
  for (const e of events) {
    now += e.dt;
    // Between steps a reboot the agent asked for may happen.
    if (world.rebootPending) {
      world.rebootPending = false;
      const target = world.pending;
      world.booted = e.bootsTarget && target ? target : world.booted;
      world.pending = null;
      world.counting = e.counting;
      world.health = null;
    }
    if (e.healthRuns && world.health === null) world.health = { ok: e.healthOk, at: new Date(now).toISOString() };
    for (let i = 0; i < 12; i++) {
      const o: Observation = { now, random: e.random, booted: { commit: world.booted, counting: world.counting }, pending: world.pending, health: world.health, rebootPending: world.rebootPending, ...result };
      const before = state;
      const d = decideAgentStep(state, o, config);
      trace.push({ before, decision: d, now, obs: o });
      state = d.state;
      result = {};
      const a = d.action;
      if (a.kind === 'wait') break;
      if (a.kind === 'reboot') {
        world.rebootPending = true;
        break;
      }
      if (a.kind === 'poll') {
        const ans = e.answer;
        result.next = ans === 'down' ? { ok: false, error: 'down' } : { ok: true, answer: ans === null ? noneAnswer('no-rollout') : typeof ans === 'string' ? noneAnswer(ans) : deployAnswer(ans.commit, ans.rollout, { allowDowngrade: true }) };
      } else if (a.kind === 'stage') {
        if (e.stageOk) world.pending = a.target.commit;
        result.staged = e.stageOk ? { ok: true } : { ok: false, error: 'net' };
      } else if (a.kind === 'acquire-lock') {
        result.lock = e.lockOk === 'granted' ? { ok: true } : { ok: false, denied: e.lockOk === 'denied', error: e.lockOk };
      } else if (a.kind === 'release-lock') {
        result.released = e.lockOk === 'down' ? { ok: false, error: 'down' } : { ok: true };
      }
    }
  }
  return { trace, state };
}

const configArb = fc.record({
  strategy: fc.constantFrom<'immediate' | 'window' | 'fleet-lock'>('immediate', 'window', 'fleet-lock'),
  window: fc.constantFrom(null, parseWindow('00:00-12:00')),
  pollSeconds: fc.integer({ min: 1, max: 300 }),
  backoffBaseSeconds: fc.integer({ min: 1, max: 30 }),
  backoffMaxSeconds: fc.integer({ min: 30, max: 900 }),
  inventorySeconds: fc.integer({ min: 60, max: 86400 }),
});

describe('decideAgentStep: properties', () => {
  it('never runs the reboot command twice for one update', () => {
    fc.assert(fc.property(configArb, fc.array(eventArb, { minLength: 1, maxLength: 80 }), (config, events) => {
      const { trace } = simulate(config, events);
      const keys = trace.filter((t) => t.decision.action.kind === 'reboot').map((t) => updateKey((t.decision.action as { target: { rolloutId: string | null; commit: string } }).target));
      expect(new Set(keys).size).toBe(keys.length);
    }), { numRuns: 400 });
  });

  it('reboots only into the staged target, and with fleet-lock only while holding the slot; reports rebooting first', () => {
    fc.assert(fc.property(configArb, fc.array(eventArb, { minLength: 1, maxLength: 60 }), (config, events) => {
      for (const { before, decision, obs: o } of simulate(config, events).trace) {
        if (decision.action.kind !== 'reboot') continue;
        expect(['staging', 'staged']).toContain(before.phase.name);
        expect(o.pending).toBe(decision.action.target.commit);
        expect(o.booted?.commit).not.toBe(decision.action.target.commit);
        expect(decision.reports.at(-1)?.state).toBe('rebooting');
        expect(decision.state.phase).toMatchObject({ name: 'rebooting', target: { commit: decision.action.target.commit } });
        if (config.strategy === 'fleet-lock') expect(decision.state.lock).toBe('held');
      }
    }), { numRuns: 300 });
  });

  it('after a reboot for X, booting something else is reported as rolled-back, X as booted', () => {
    fc.assert(fc.property(configArb, fc.array(eventArb, { minLength: 1, maxLength: 60 }), (config, events) => {
      for (const { before, decision } of simulate(config, events).trace) {
        if (before.phase.name !== 'rebooting' || decision.state.phase.name === 'rebooting') continue;
        const states = decision.reports.map((r) => r.state);
        expect(states[0] === 'booted' || states[0] === 'rolled-back').toBe(true);
      }
    }), { numRuns: 300 });
  });

  it('back-off stays within its cap; history and the state stay small and JSON-clean', () => {
    fc.assert(fc.property(configArb, fc.array(eventArb, { minLength: 1, maxLength: 80 }), (config, events) => {
      for (const { decision, now } of simulate(config, events).trace) {
        const s = decision.state;
        expect(JSON.parse(JSON.stringify(s))).toEqual(s);
        expect(s.rebootedFor.length).toBeLessThanOrEqual(50);
        if (decision.action.kind === 'wait') expect(decision.action.seconds).toBeGreaterThanOrEqual(0);
        if (s.backoff.until) expect(Date.parse(s.backoff.until)).toBeLessThanOrEqual(now + config.backoffMaxSeconds * 1000);
      }
    }), { numRuns: 200 });
  });

  it('backoffSeconds: within [half, full] of the capped exponential', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 1000 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (n, r) => {
      const b = backoffSeconds(n, r, DEFAULT_CONFIG);
      const full = Math.min(DEFAULT_CONFIG.backoffMaxSeconds, DEFAULT_CONFIG.backoffBaseSeconds * 2 ** (n - 1));
      expect(b).toBeGreaterThanOrEqual(full / 2);
      expect(b).toBeLessThanOrEqual(full);
    }));
  });
});
