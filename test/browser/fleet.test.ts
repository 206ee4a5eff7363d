// The fleet dashboard in a real browser (Debian chromium): sign in, a seeded
// fleet, a rollout paused through its confirmation, the tree and package diff
// of two real commits (rootfs-a -> rootfs-b), a device rolled back, the audit
// log's chain, and a viewer who sees no action and whom the API refuses.

import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/fleet/app.js';
import { openDb, type FleetDb } from '../../src/fleet/db.js';
import { migrate } from '../../src/fleet/migrations.js';
import { createAdminToken, createEnrollmentToken } from '../../src/fleet/tokens.js';
import { CLI, rootfsPair, runAsync, strata, tmpDir } from '../helpers/fixtures.js';
import { hasChromium, launchChromium, openPage, shot } from '../helpers/browser.js';

const pair = rootfsPair();

describe.skipIf(!hasChromium || !pair)('fleet dashboard (browser)', () => {
  let browser: Browser;
  let page: Page;
  let foreign: string[];
  let consoleErrors: string[];
  let fdb: FleetDb;
  let fleet: FastifyInstance;
  let server: { url: string };
  let admin: string;
  let viewer: string;
  let commitA: string;
  let commitB: string;
  let rolloutId: string;
  const devices: Record<string, { id: string; token: string }> = {};

  const call = async (method: 'GET' | 'POST', url: string, token: string | null, body?: unknown) => {
    const r = await fleet.inject({ method, url, headers: token ? { authorization: `Bearer ${token}` } : {}, ...(body !== undefined ? { payload: body as object } : {}) });
    if (r.statusCode >= 300) throw new Error(`${method} ${url}: ${r.statusCode} ${r.body}`);
    return r.json();
  };
  const deployments = (booted: string, bootedVersion: string, other?: [string, string]) => [
    { index: 0, commit: booted, version: bootedVersion, booted: true, default: true, rollback: false, pinned: false, staged: false, health: 'blessed' },
    ...(other ? [{ index: 1, commit: other[0], version: other[1], booted: false, default: false, rollback: true, pinned: false, staged: false, health: 'blessed' }] : []),
  ];

  beforeAll(async () => {
    const dir = tmpDir('strata-fleet-web-');
    const repo = path.join(dir, 'repo');
    expect(strata(['init', '--repo', repo, '--mode', 'archive']).status).toBe(0);
    const commits: string[] = [];
    for (const [v, src] of [['1.0', pair!.a], ['2.0', pair!.b]]) {
      const c = await runAsync(process.execPath, [CLI, 'commit', '--repo', repo, '-b', 'os/x86_64/stable', '--add-metadata-string', `version=${v}`, '-s', `Debian ${v}`, '--no-bindings', src]);
      expect(c.status, c.stderr).toBe(0);
      commits.push(c.stdout.trim().split('\n')[0]);
    }
    [commitA, commitB] = commits;

    fdb = await openDb(`sqlite:${path.join(dir, 'fleet.db')}`);
    await migrate(fdb);
    admin = (await createAdminToken(fdb, { name: 'ops', role: 'admin', actor: 'test' })).token;
    viewer = (await createAdminToken(fdb, { name: 'auditor', role: 'viewer', actor: 'test' })).token;
    fleet = await buildApp({ db: fdb, repo, evaluateEverySeconds: 0 });
    // The fleet app serves the dashboard at / and its repository API itself.
    server = { url: await fleet.listen({ port: 0, host: '127.0.0.1' }) };

    // Seed through the admin API, devices through the device API.
    await call('POST', '/v1/channels', admin, { name: 'stable', ref: 'os/x86_64/stable' });
    const r1 = await call('POST', '/v1/releases', admin, { channel: 'stable', commit: commitA, version: '1.0' });
    const r2 = await call('POST', '/v1/releases', admin, { channel: 'stable', commit: commitB, version: '2.0' });
    await call('POST', '/v1/groups', admin, { name: 'edge', channel: 'stable', releaseId: r1.id });
    const enr = await createEnrollmentToken(fdb, { group: 'edge', reusable: true, actor: 'test' });
    for (const [name, site] of [['edge-01', 'lyon'], ['edge-02', 'lyon'], ['edge-03', 'nantes'], ['edge-04', 'nantes']]) {
      const e = await call('POST', '/v1/enroll', null, { enrollmentToken: enr.token, name, labels: { site } });
      devices[name] = { id: e.deviceId, token: e.token };
    }
    // edge-01 already runs 2.0 (1.0 kept as its rollback); the others run 1.0; edge-04 failed its health checks.
    await call('POST', '/v1/device/report', devices['edge-01'].token, { state: 'healthy', booted: { commit: commitB, version: '2.0' }, deployments: deployments(commitB, '2.0', [commitA, '1.0']), health: { ok: true, failed: [], at: new Date().toISOString() }, verify: { ok: true, modified: 0, added: 0, removed: 0, at: new Date().toISOString() } });
    for (const n of ['edge-02', 'edge-03']) await call('POST', '/v1/device/report', devices[n].token, { state: 'healthy', booted: { commit: commitA, version: '1.0' }, deployments: deployments(commitA, '1.0') });
    await call('POST', '/v1/device/report', devices['edge-04'].token, { state: 'unhealthy', booted: { commit: commitA, version: '1.0' }, deployments: deployments(commitA, '1.0'), health: { ok: false, failed: ['network-online'], at: new Date().toISOString() } });
    const ro = await call('POST', '/v1/rollouts', admin, { releaseId: r2.id, group: 'edge', waves: [{ percent: 50, soakSeconds: 0 }, { percent: 100, soakSeconds: 0 }], maxConcurrent: 2, failureThreshold: 0.25, graceSeconds: 600 });
    rolloutId = ro.id;

    browser = await launchChromium();
    ({ page, foreign, consoleErrors } = await openPage(browser, server.url));
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await fleet?.close();
    await fdb?.close();
  });

  it('signs in with an admin token and shows the fleet by version, group and state, filtered by label', async () => {
    await page.goto(server.url + '/');
    await page.getByLabel('Token').fill('not-a-real-token-0000000000');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').waitFor();
    await page.getByLabel('Token').fill(admin);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('[data-count="devices"]').waitFor();
    expect(await page.locator('[data-count="devices"] .n').textContent()).toBe('4');
    expect(await page.locator('[data-count="healthy"] .n').textContent()).toBe('3');
    expect(await page.locator('[data-count="failed"] .n').textContent()).toBe('1');
    expect(await page.getByRole('region', { name: 'By version' }).textContent()).toMatch(/1\.0\s*3/);
    await shot(page, 'fleet-overview');
    await page.getByLabel('Label (key=value)').fill('site=nantes');
    await expect.poll(() => page.locator('table[aria-label="Devices"] tbody tr').count()).toBe(2);
    await page.getByLabel('Label (key=value)').fill('');
  });

  it('opens the rollout and pauses it after a confirmation that names the devices and versions', async () => {
    await page.getByRole('link', { name: 'Rollouts' }).click();
    await page.locator(`a[href="#/rollouts/${rolloutId}"]`).click();
    await page.locator('[data-state="active"]').waitFor();
    await page.getByRole('button', { name: 'Pause' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    const text = await dialog.textContent();
    expect(text).toContain('version 2.0 to group edge');
    expect(text).toContain('edge-01 (2.0)');
    expect(text).toContain('edge-02 (1.0)');
    await shot(page, 'fleet-rollout-pause-dialog');
    await dialog.getByRole('button', { name: 'Pause now' }).click();
    await page.locator('[data-state="paused"]').waitFor();
    expect(await page.locator('svg[role="img"]').count()).toBe(1);
    await shot(page, 'fleet-rollout');
  });

  it('shows the tree diff of the two releases: /etc/group line by line, apt upgraded', async () => {
    await page.goto(`${server.url}/#/diff?from=${commitA}&to=${commitB}`);
    await page.locator('.tree[data-render-ms]').waitFor();
    await page.fill('#tree-filter', 'etc/group');
    const group = page.locator('[role="treeitem"][data-path="/etc/group"]');
    await group.click();
    await page.locator('table.textdiff tr.l-add').first().waitFor();
    expect(await page.locator('table.textdiff tr.l-add').allTextContents()).toContainEqual(expect.stringContaining('_ssh:x:101:'));
    await expect.poll(() => page.locator('tr[data-package="apt"]').textContent()).toMatch(/upgraded.*2\.6\.1.*2\.6\.2/);
    expect(await page.locator('#diff-from option', { hasText: 'release 1.0' }).count()).toBe(1);
    await shot(page, 'fleet-diff');
  });

  it('rolls a device back after a confirmation and shows its new state', async () => {
    const dev = devices['edge-01'];
    await page.goto(`${server.url}/#/devices/${dev.id}`);
    await page.getByRole('button', { name: 'Roll back this device' }).click();
    const dialog = page.getByRole('dialog');
    expect(await dialog.textContent()).toMatch(/edge-01 goes back from 2\.0 .* to 1\.0/);
    await dialog.getByRole('button', { name: 'Roll back now' }).click();
    await page.locator('[data-field="override"]').waitFor();
    expect(await page.locator('[data-field="override"]').textContent()).toContain('rolling back to 1.0');
    // The device does as told and reports; the page's polling shows it.
    const next = await call('GET', '/v1/device/next', dev.token);
    expect(next).toMatchObject({ action: 'deploy', commit: commitA, allowDowngrade: true });
    await call('POST', '/v1/device/report', dev.token, { state: 'healthy', booted: { commit: commitA, version: '1.0' }, deployments: deployments(commitA, '1.0', [commitB, '2.0']) });
    await expect.poll(() => page.locator('[data-field="booted"]').textContent(), { timeout: 15_000 }).toContain('1.0');
    expect(await page.getByLabel('History from the audit log').textContent()).toContain('device.rollback');
    await shot(page, 'fleet-device');
  });

  it('shows the audit log with its chain verified', async () => {
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.locator('[data-chain="ok"]').waitFor();
    expect(await page.locator('tr[data-action="device.rollback"]').count()).toBe(1);
    await page.getByLabel('Action').fill('rollout.pause');
    await expect.poll(() => page.locator('table[aria-label="Audit entries"] tbody tr').count()).toBe(1);
    await shot(page, 'fleet-audit');
  });

  it('a viewer sees no action buttons, and the API refuses the viewer\'s writes', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Token').fill(viewer);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('[data-role="viewer"]').waitFor();
    await page.goto(`${server.url}/#/rollouts/${rolloutId}`);
    await page.locator('[data-state="paused"]').waitFor();
    expect(await page.getByRole('button', { name: /Resume|Abort|Roll back/ }).count()).toBe(0);
    await page.goto(`${server.url}/#/devices/${devices['edge-02'].id}`);
    await page.locator('[data-field="booted"]').waitFor();
    expect(await page.getByRole('button', { name: 'Roll back this device' }).count()).toBe(0);
    await shot(page, 'fleet-viewer-device');
    const status = await page.evaluate(
      async ([id, token]) => (await fetch(`/v1/rollouts/${id}/resume`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' })).status,
      [rolloutId, viewer],
    );
    expect(status).toBe(403);
    expect(foreign).toEqual([]);
    expect(consoleErrors.filter((e) => !/401|403|Failed to load resource/.test(e))).toEqual([]);
  });
});

