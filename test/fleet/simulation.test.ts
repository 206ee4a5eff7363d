// A smaller version of the benchmark's 10,000-device simulation: 1,000
// devices, 3% of them failing their health checks, in process. With this
// seed the first wave (10 devices) passes and the second pauses; at 10,000
// devices the first wave alone (~100 devices) is enough to cross 2%.

import { describe, expect, it } from 'vitest';
import { simulateRollout } from '../../bench/fleet-sim.js';
import { openTestDb } from './helpers/fleet.js';

describe.each(['sqlite', 'postgres'] as const)('rollout simulation (%s)', (dialect) => {
  it('1,000 devices with 3% failures: the rollout pauses itself before its second wave completes', async () => {
    const { fdb, cleanup } = await openTestDb(dialect);
    try {
      const res = await simulateRollout(fdb, { devices: 1000, failureShare: 0.03, seed: 7, threshold: 0.02 });
      expect(res.rollout.state, JSON.stringify(res.rollout)).toBe('paused');
      expect(res.pausedBeforeSecondWaveCompleted).toBe(true);
      expect(res.rollout.pausedReason).toMatch(/crossed the threshold of 2%/);
      // No device outside the waves reached was updated.
      const reached = res.rollout.waves[res.rollout.currentWave].devices;
      expect(res.rollout.waves[3].healthy + res.rollout.waves[3].failed).toBeLessThanOrEqual(reached);
    } finally {
      await fdb.close();
      await cleanup();
    }
  });
});
