// The README's first command: the tour runs end to end and shows what it claims.
import { describe, expect, it } from 'vitest';
import { strata } from '../helpers/fixtures.js';

describe('strata tour', () => {
  it('runs the repository and device walk end to end', () => {
    const r = strata(['tour']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('fsck caught the change');
    expect(r.stdout).toMatch(/\/etc\/motd in 1\.1 \(kept, the admin changed it\): +Managed by the ops team/);
    expect(r.stdout).toMatch(/0 +\w{12}\.0 +v1\.0 +\(booted, default\)/);
    expect(r.stdout).toContain('modified: /usr/bin/hello (content)');
  });
});
