// The fleet commands as a user runs them (the built CLI), on a SQLite file.

import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { strata, tmpDir } from '../helpers/fixtures.js';
import { openDb } from '../../src/fleet/db.js';
import { migrate } from '../../src/fleet/migrations.js';
import { enrollDevice, reportFromDevice } from '../../src/fleet/devices.js';

describe('strata fleet (CLI)', () => {
  it('creates tokens, verifies the audit chain and names the first bad entry, tells what a device ran', async () => {
    const db = `sqlite:${path.join(tmpDir('strata-fleet-cli-'), 'fleet.db')}`;
    const admin = strata(['fleet', 'token', 'create', 'ops', '--role', 'admin', '--db', db]);
    expect(admin.status, admin.stderr).toBe(0);
    expect(admin.stdout.trim()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(admin.stderr).toMatch(/shown only now/);
    const enroll = strata(['fleet', 'enroll-token', 'create', '--group', 'edge', '--label', 'site=lyon', '--json', '--db', db]);
    expect(enroll.status, enroll.stderr).toBe(0);
    const et = enroll.json<{ token: string; group: string; reusable: boolean }>();
    expect(et).toMatchObject({ group: 'edge', reusable: false });

    const fdb = await openDb(db);
    await migrate(fdb);
    const dev = await enrollDevice(fdb, { enrollmentToken: et.token, name: 'edge-1' }, new Date('2026-03-02T10:00:00Z'));
    const auth = { id: dev.deviceId, group: 'edge', bucket: 0, bootedCommit: null, overrideCommit: null };
    await reportFromDevice(fdb, auth, { state: 'booted', booted: { commit: 'a'.repeat(64), version: '1.0' } }, new Date('2026-03-02T10:01:00Z'));
    await reportFromDevice(fdb, auth, { state: 'booted', booted: { commit: 'b'.repeat(64), version: '2.0' } }, new Date('2026-03-03T10:00:00Z'));
    await fdb.close();

    const at = strata(['fleet', 'audit', 'at', dev.deviceId, '2026-03-02T12:00:00Z', '--json', '--db', db]);
    expect(at.status, at.stderr).toBe(0);
    expect(at.json()).toMatchObject({ commit: 'a'.repeat(64), version: '1.0', since: '2026-03-02T10:01:00.000Z' });

    const ok = strata(['fleet', 'audit', 'verify', '--db', db]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/intact: 5 entries/);
    const raw = new Database(db.slice('sqlite:'.length));
    raw.prepare("update audit_log set after = replace(after, 'aaaa', 'cccc') where seq = 4").run();
    raw.close();
    const bad = strata(['fleet', 'audit', 'verify', '--db', db]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^strata: audit log broken at entry 4: entry 4 was altered/);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);

    const drift = strata(['fleet', 'drift', '--json', '--db', db]);
    expect(drift.status, drift.stderr).toBe(0);
    expect(drift.json()).toEqual([]);
  });

  it('refuses bad input with one line and a non-zero exit', () => {
    const db = `sqlite:${path.join(tmpDir('strata-fleet-cli-'), 'fleet.db')}`;
    const role = strata(['fleet', 'token', 'create', 'x', '--role', 'root', '--db', db]);
    expect(role.status).toBe(2);
    expect(role.stderr).toBe("strata: --role takes admin or viewer, got 'root'\n");
    const url = strata(['fleet', 'drift', '--db', 'mysql://localhost/fleet']);
    expect(url.status).toBe(2);
    const time = strata(['fleet', 'audit', 'at', 'dev_x', 'yesterday', '--db', db]);
    expect(time.status).toBe(2);
    const missing = strata(['fleet', 'audit', 'at', 'dev_x', '2026-01-01T00:00:00Z', '--db', db]);
    expect(missing.status).toBe(66);
    expect(missing.stderr).toMatch(/no device 'dev_x'/);
  });
});
