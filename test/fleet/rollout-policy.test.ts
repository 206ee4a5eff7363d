import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BUCKETS, bucketOf, evaluateRollout, failureRate, inWave, nextAction, shouldPause, waveOfBucket, windowOpen,
  type MaintenanceWindow, type NextFacts, type WaveState,
} from '../../src/fleet/rollout-policy.js';

const C1 = 'a'.repeat(64);
const C2 = 'b'.repeat(64);

function waves(spec: [number, number][], startedAt = '2026-01-01T00:00:00.000Z'): WaveState[] {
  return spec.map(([percent, soakSeconds], i) => ({ percent, soakSeconds, startedAt: i === 0 ? startedAt : null, completedAt: null, acknowledgedFailures: 0 }));
}

describe('wave membership', () => {
  it('is stable and in range', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 40 }), (id) => {
        const b = bucketOf(id);
        expect(b).toBe(bucketOf(id));
        expect(b).toBeGreaterThanOrEqual(0);
        expect(b).toBeLessThan(BUCKETS);
      }),
    );
  });

  it('is monotonic: a device in a wave stays in every larger wave', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: BUCKETS - 1 }), fc.double({ min: 0.01, max: 100, noNaN: true }), fc.double({ min: 0.01, max: 100, noNaN: true }), (b, p, q) => {
        const [lo, hi] = p <= q ? [p, q] : [q, p];
        if (inWave(b, lo)) expect(inWave(b, hi)).toBe(true);
      }),
    );
  });

  it('puts everyone in a 100% wave and the first covering wave is the one named', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: BUCKETS - 1 }), (b) => {
        expect(inWave(b, 100)).toBe(true);
        const ws = [{ percent: 1 }, { percent: 10 }, { percent: 50 }, { percent: 100 }];
        const i = waveOfBucket(b, ws);
        expect(inWave(b, ws[i].percent)).toBe(true);
        if (i > 0) expect(inWave(b, ws[i - 1].percent)).toBe(false);
      }),
    );
  });

  it('spreads ids evenly: about p% of devices fall in a p% wave', () => {
    const n = 20000;
    let in10 = 0;
    for (let i = 0; i < n; i++) if (inWave(bucketOf(`dev_${i}`), 10)) in10++;
    expect(in10 / n).toBeGreaterThan(0.09);
    expect(in10 / n).toBeLessThan(0.11);
  });
});

describe('maintenance windows', () => {
  const paris: MaintenanceWindow = { days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '02:00', end: '05:00', timeZone: 'Europe/Paris' };

  it('opens in local time of the zone, winter and summer', () => {
    // 2026-03-02 is a Monday; Paris is UTC+1 in winter.
    expect(windowOpen(paris, new Date('2026-03-02T01:30:00Z'))).toBe(true); // 02:30 Paris
    expect(windowOpen(paris, new Date('2026-03-02T00:59:00Z'))).toBe(false); // 01:59
    expect(windowOpen(paris, new Date('2026-03-02T04:00:00Z'))).toBe(false); // 05:00: end is exclusive
    // 2026-07-06 is a Monday; UTC+2 in summer.
    expect(windowOpen(paris, new Date('2026-07-06T00:30:00Z'))).toBe(true); // 02:30
    expect(windowOpen(paris, new Date('2026-07-06T03:30:00Z'))).toBe(false); // 05:30
    // Saturday 2026-03-07 is not listed.
    expect(windowOpen(paris, new Date('2026-03-07T01:30:00Z'))).toBe(false);
  });

  it('runs past midnight into the next day', () => {
    const night: MaintenanceWindow = { days: ['fri'], start: '22:00', end: '03:00', timeZone: 'UTC' };
    expect(windowOpen(night, new Date('2026-03-06T23:00:00Z'))).toBe(true); // Friday 23:00
    expect(windowOpen(night, new Date('2026-03-07T02:59:00Z'))).toBe(true); // Saturday 02:59
    expect(windowOpen(night, new Date('2026-03-07T03:00:00Z'))).toBe(false);
    expect(windowOpen(night, new Date('2026-03-05T23:00:00Z'))).toBe(false); // Thursday
  });

  it('is always open without a window, and whole days when start equals end', () => {
    fc.assert(
      fc.property(fc.date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }), (t) => {
        expect(windowOpen(null, t)).toBe(true);
        expect(windowOpen({ days: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'], start: '00:00', end: '00:00', timeZone: 'Asia/Kolkata' }, t)).toBe(true);
      }),
    );
  });

  it('agrees with a slow reference over random instants and zones', () => {
    const zones = ['UTC', 'Europe/Paris', 'America/New_York', 'Asia/Tokyo', 'Australia/Adelaide'];
    fc.assert(
      fc.property(
        fc.date({ min: new Date('2020-01-01'), max: new Date('2030-01-01'), noInvalidDate: true }),
        fc.constantFrom(...zones),
        fc.integer({ min: 0, max: 23 }),
        fc.integer({ min: 1, max: 23 }),
        (t, tz, sh, len) => {
          const eh = (sh + len) % 24;
          const w: MaintenanceWindow = { days: ['mon', 'wed', 'sat'], start: `${String(sh).padStart(2, '0')}:00`, end: `${String(eh).padStart(2, '0')}:00`, timeZone: tz };
          // Reference: local wall time through toLocaleString.
          const local = new Date(t.toLocaleString('en-US', { timeZone: tz }));
          const h = local.getHours();
          const day = local.getDay();
          const daysIdx = [1, 3, 6];
          const expected = sh < eh ? daysIdx.includes(day) && h >= sh && h < eh : (daysIdx.includes(day) && h >= sh) || (daysIdx.includes((day + 6) % 7) && h < eh);
          expect(windowOpen(w, t)).toBe(expected);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('failure threshold', () => {
  it('pauses strictly above the threshold, never at or below it', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10000 }), fc.integer({ min: 0, max: 10000 }), fc.double({ min: 0, max: 1, noNaN: true }), (n, f, thr) => {
        const failed = Math.min(f, n);
        const stats = { devicesInWave: n, finished: failed, failed };
        expect(shouldPause(stats, thr)).toBe(failed / n > thr);
      }),
    );
  });

  it('does not count failures acknowledged by a resume', () => {
    expect(failureRate({ devicesInWave: 100, finished: 10, failed: 10 }, 8)).toBeCloseTo(0.02);
    expect(shouldPause({ devicesInWave: 100, finished: 10, failed: 10 }, 0.05, 8)).toBe(false);
  });
});

describe('evaluateRollout', () => {
  const t0 = new Date('2026-01-01T00:00:00Z');
  const at = (s: number): Date => new Date(t0.getTime() + s * 1000);

  it('completes a wave when every device finished, then moves on after the soak', () => {
    const r = { state: 'active' as const, currentWave: 0, waves: waves([[10, 600], [100, 0]]), failureThreshold: 0.1 };
    const a = evaluateRollout(r, { devicesInWave: 10, finished: 9, failed: 0 }, at(60));
    expect(a.changed).toBe(false);
    const b = evaluateRollout(r, { devicesInWave: 10, finished: 10, failed: 0 }, at(60));
    expect(b).toMatchObject({ state: 'active', currentWave: 0, changed: true });
    expect(b.waves[0].completedAt).toBe(at(60).toISOString());
    const c = evaluateRollout({ ...r, waves: b.waves }, { devicesInWave: 10, finished: 10, failed: 0 }, at(659));
    expect(c.currentWave).toBe(0);
    const d = evaluateRollout({ ...r, waves: b.waves }, { devicesInWave: 10, finished: 10, failed: 0 }, at(660));
    expect(d.currentWave).toBe(1);
    expect(d.waves[1].startedAt).toBe(at(660).toISOString());
    const e = evaluateRollout({ ...r, currentWave: 1, waves: d.waves }, { devicesInWave: 100, finished: 100, failed: 0 }, at(700));
    expect(e.state).toBe('completed');
  });

  it('pauses with a reason naming the wave, the counts and the threshold', () => {
    const r = { state: 'active' as const, currentWave: 1, waves: waves([[1, 0], [10, 0], [100, 0]]), failureThreshold: 0.02 };
    const res = evaluateRollout(r, { devicesInWave: 1000, finished: 300, failed: 21 }, t0);
    expect(res.state).toBe('paused');
    expect(res.pausedReason).toMatch(/wave 2/);
    expect(res.pausedReason).toMatch(/21 of 1000/);
    expect(res.pausedReason).toMatch(/2%/);
  });

  it('never advances past a wave whose failures cross the threshold (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 500 }), fc.integer({ min: 0, max: 500 }), fc.double({ min: 0, max: 0.5, noNaN: true }), (n, f, thr) => {
        const failed = Math.min(f, n);
        const r = { state: 'active' as const, currentWave: 0, waves: waves([[50, 0], [100, 0]]), failureThreshold: thr };
        const res = evaluateRollout(r, { devicesInWave: n, finished: n, failed }, t0);
        if (failed / n > thr) expect(res.state).toBe('paused');
        else expect(res.currentWave).toBe(1);
      }),
    );
  });

  it('leaves paused, aborted and completed rollouts alone', () => {
    for (const state of ['paused', 'aborted', 'completed'] as const) {
      const res = evaluateRollout({ state, currentWave: 0, waves: waves([[100, 0]]), failureThreshold: 0 }, { devicesInWave: 1, finished: 1, failed: 1 }, t0);
      expect(res.changed).toBe(false);
    }
  });
});

describe('nextAction', () => {
  const base: NextFacts = {
    now: new Date('2026-03-02T10:00:00Z'),
    device: { bucket: 50, bootedCommit: C1, overrideCommit: null },
    rollout: { state: 'active', kind: 'forward', currentWave: 0, waves: [{ percent: 1 }, { percent: 100 }], maxConcurrent: 2, window: null, commit: C2 },
    deviceState: null,
    inProgress: 0,
  };

  it('deploys to a device in the current wave, with a slot', () => {
    expect(nextAction(base)).toMatchObject({ action: 'deploy', commit: C2, claim: true, allowDowngrade: false });
  });

  it('names why not', () => {
    expect(nextAction({ ...base, rollout: null })).toEqual({ action: 'none', reason: 'no-rollout' });
    expect(nextAction({ ...base, device: { ...base.device, bootedCommit: C2 } })).toEqual({ action: 'none', reason: 'up-to-date' });
    expect(nextAction({ ...base, device: { ...base.device, bucket: 100 } })).toEqual({ action: 'none', reason: 'not-in-wave' });
    expect(nextAction({ ...base, rollout: { ...base.rollout!, state: 'paused' } })).toEqual({ action: 'none', reason: 'paused' });
    expect(nextAction({ ...base, inProgress: 2 })).toEqual({ action: 'none', reason: 'concurrency' });
    expect(nextAction({ ...base, deviceState: 'unhealthy' })).toEqual({ action: 'none', reason: 'held' });
    expect(nextAction({ ...base, deviceState: 'rolled-back' })).toEqual({ action: 'none', reason: 'held' });
    const closed: MaintenanceWindow = { days: ['sat'], start: '02:00', end: '03:00', timeZone: 'UTC' };
    expect(nextAction({ ...base, rollout: { ...base.rollout!, window: closed } })).toEqual({ action: 'none', reason: 'outside-window' });
    expect(nextAction({ ...base, rollout: { ...base.rollout!, state: 'aborted' } })).toEqual({ action: 'none', reason: 'no-rollout' });
  });

  it('keeps answering deploy to a device already holding a slot, even when all slots are taken or the window closes', () => {
    const closed: MaintenanceWindow = { days: ['sat'], start: '02:00', end: '03:00', timeZone: 'UTC' };
    expect(nextAction({ ...base, deviceState: 'downloading', inProgress: 99, rollout: { ...base.rollout!, window: closed } })).toMatchObject({ action: 'deploy', claim: false });
  });

  it('rolls back with allowDowngrade, and honours a per-device override first', () => {
    expect(nextAction({ ...base, rollout: { ...base.rollout!, kind: 'rollback' } })).toMatchObject({ action: 'deploy', allowDowngrade: true });
    expect(nextAction({ ...base, device: { ...base.device, overrideCommit: 'c'.repeat(64) } })).toMatchObject({ action: 'deploy', commit: 'c'.repeat(64), override: true });
  });

  it('never offers a deploy beyond the slots (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: BUCKETS - 1 }), (max, inProgress, bucket) => {
        const d = nextAction({ ...base, device: { ...base.device, bucket }, inProgress, rollout: { ...base.rollout!, maxConcurrent: max, waves: [{ percent: 100 }] } });
        if (d.action === 'deploy') expect(inProgress).toBeLessThan(max);
        else expect(d.reason).toBe('concurrency');
      }),
    );
  });
});
