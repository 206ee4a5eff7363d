import { describe, expect, it } from 'vitest';
import { DIALECTS, makeFleet, commitOf } from './helpers/fleet.js';

describe.each(DIALECTS)('smoke (%s)', (dialect) => {
  it('enrolls and polls', async () => {
    const f = await makeFleet(dialect);
    try {
      let r = await f.req('POST', '/v1/enrollment-tokens', f.admin, { group: 'edge' });
      expect(r.statusCode).toBe(201);
      const et = r.json().token;
      r = await f.req('POST', '/v1/enroll', null, { enrollmentToken: et, name: 'd1' });
      expect(r.statusCode, r.body).toBe(201);
      const dev = r.json();
      r = await f.req('GET', '/v1/device/next', dev.token);
      expect(r.json()).toMatchObject({ action: 'none', reason: 'no-rollout' });
      r = await f.req('POST', '/v1/channels', f.admin, { name: 'stable', ref: 'os/x86_64/stable' });
      expect(r.statusCode, r.body).toBe(201);
      r = await f.req('POST', '/v1/releases', f.admin, { channel: 'stable', commit: commitOf(1), version: '1.0' });
      expect(r.statusCode, r.body).toBe(201);
      const rel = r.json();
      r = await f.req('POST', '/v1/rollouts', f.admin, { releaseId: rel.id, group: 'edge', waves: [{ percent: 100, soakSeconds: 0 }] });
      expect(r.statusCode, r.body).toBe(201);
      r = await f.req('GET', '/v1/device/next', dev.token);
      expect(r.json(), r.body).toMatchObject({ action: 'deploy', commit: commitOf(1) });
    } finally {
      await f.close();
    }
  });
});
