// `strata ui` in a real browser (Debian chromium): one machine's deployments,
// the tree diff between them with a text diff and the package change, and
// the tree diff of the real Debian rootfs pair (~3,000 changes), timed.

import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { deploy } from '../../src/sysroot/deploy.js';
import { CLI, rootfsPair, runAsync, startCliServer, strata, tmpDir } from '../helpers/fixtures.js';
import { REF, makeSysroot } from '../helpers/sysroot.js';
import { hasChromium, launchChromium, openPage, shot, stop } from '../helpers/browser.js';

process.env.STRATA_WORKERS ??= '1';

const status = (apt: string, extra = '') =>
  `Package: apt\nStatus: install ok installed\nArchitecture: amd64\nVersion: ${apt}\n\nPackage: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4+deb12u1\n${extra}`;

describe.skipIf(!hasChromium)('strata ui (browser)', () => {
  let browser: Browser;
  let page: Page;
  let foreign: string[];
  let consoleErrors: string[];
  const servers: { child: import('node:child_process').ChildProcess }[] = [];

  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    for (const s of servers) await stop(s.child);
    await browser?.close();
  });

  it('shows a sysroot\'s deployments and the diff between them: a changed config file line by line, an upgraded package', async () => {
    const s = makeSysroot();
    const v1 = await s.commitVersion({ version: '1.0', etc: { 'app/app.conf': 'level=1\nname=edge\n' }, files: { 'usr/share/factory/var/lib/dpkg/status': status('2.6.1') } });
    await deploy({ sysroot: s.dir, rev: v1 });
    const v2 = await s.commitVersion({ version: '2.0', etc: { 'app/app.conf': 'level=2\nname=edge\n' }, files: { 'usr/share/factory/var/lib/dpkg/status': status('2.6.2'), 'usr/bin/new-tool': '#!/bin/sh\n' } });
    await deploy({ sysroot: s.dir, rev: REF });
    const srv = await startCliServer(['ui', '--sysroot', s.dir, '--port', '0', '--json']);
    servers.push(srv);
    ({ page, foreign, consoleErrors } = await openPage(browser, srv.url));

    await page.goto(srv.url + '/');
    const rows = page.locator('table[aria-label="Deployments"] tbody tr');
    await rows.first().waitFor();
    expect(await rows.count()).toBe(2);
    const first = page.locator(`tr[data-commit="${v2}"]`);
    await expect.poll(() => first.textContent()).toContain('default');
    expect(await page.locator(`tr[data-commit="${v1}"]`).textContent()).toContain('rollback');
    await shot(page, 'ui-deployments');

    // From the rollback deployment's row to the diff between it and the default one.
    await page.locator(`tr[data-commit="${v1}"] a`).click();
    await page.locator('.tree[data-render-ms]').waitFor();
    expect(page.url()).toContain(`from=${v2}`);
    // Back to the v1 -> v2 direction through the picker, as a user would.
    await page.selectOption('#diff-from', v1);
    await page.selectOption('#diff-to', v2);
    await page.getByRole('button', { name: 'Compare' }).click();
    await page.locator(`.tree[data-render-ms]`).waitFor();
    await expect.poll(() => page.url()).toContain(`from=${v1}`);

    // The package change.
    await expect.poll(() => page.locator('tr[data-package="apt"]').textContent()).toContain('2.6.2');
    expect(await page.locator('tr[data-package="apt"]').textContent()).toMatch(/upgraded.*2\.6\.1.*2\.6\.2/);

    // Open usr/ then etc/ then app/ by keyboard, then the file.
    await page.fill('#tree-filter', 'app.conf');
    const row = page.locator('[role="treeitem"][data-path="/usr/etc/app/app.conf"]');
    await row.waitFor();
    expect(await row.textContent()).toContain('~ M');
    await row.click();
    const diffTable = page.locator('table.textdiff');
    await diffTable.waitFor();
    expect(await diffTable.locator('tr.l-del').textContent()).toContain('level=1');
    expect(await diffTable.locator('tr.l-add').textContent()).toContain('level=2');
    await shot(page, 'ui-diff-small');
    expect(foreign).toEqual([]);
    expect(consoleErrors).toEqual([]);
  });

  const pair = rootfsPair();
  it.skipIf(!pair)('the rootfs-a -> rootfs-b diff (~3,000 changes) renders fast, filters, opens /etc/group line by line and lists apt as upgraded', async () => {
    const repo = path.join(tmpDir('strata-ui-rootfs-'), 'repo');
    expect(strata(['init', '--repo', repo, '--mode', 'archive']).status).toBe(0);
    for (const [v, dir] of [['1.0', pair!.a], ['2.0', pair!.b]]) {
      const c = await runAsync(process.execPath, [CLI, 'commit', '--repo', repo, '-b', 'debian/bookworm', '--add-metadata-string', `version=${v}`, '-s', `rootfs ${v}`, '--no-bindings', dir]);
      expect(c.status, c.stderr).toBe(0);
    }
    const srv = await startCliServer(['ui', '--repo', repo, '--port', '0', '--json']);
    servers.push(srv);
    ({ page, foreign, consoleErrors } = await openPage(browser, srv.url));
    await page.goto(srv.url + '/');
    // The picker defaults to the newest commit against its parent.
    await page.locator('#diff-from option').nth(1).waitFor({ state: 'attached' });
    const t0 = Date.now();
    await page.getByRole('button', { name: 'Compare' }).click();
    const tree = page.locator('.tree[data-render-ms]');
    await tree.waitFor();
    const clickToTree = Date.now() - t0;
    const renderMs = Number(await tree.getAttribute('data-render-ms'));
    const domRows = await page.locator('[role="treeitem"]').count();
    expect(await page.locator('.summary').textContent()).toMatch(/2\d{3} added.*\d+ modified/);
    await shot(page, 'ui-diff-rootfs');

    // Expand everything below /usr by keyboard: End, then open folders with ArrowRight.
    await page.locator('.tree').focus();
    await page.keyboard.press('Home');
    const usr = page.locator('[role="treeitem"][data-path="/usr"]');
    await usr.click();
    expect(await usr.getAttribute('aria-expanded')).toBe('true');
    await page.keyboard.press('ArrowLeft');
    expect(await usr.getAttribute('aria-expanded')).toBe('false');
    await page.keyboard.press('ArrowRight');
    expect(await usr.getAttribute('aria-expanded')).toBe('true');

    // Worst case: a filter every path matches opens every folder (all ~3,000 rows); then scroll to the end.
    const a0 = Date.now();
    await page.fill('#tree-filter', '/');
    await expect.poll(async () => Number(await tree.getAttribute('data-rows'))).toBeGreaterThan(3000);
    const allRowsMs = Date.now() - a0;
    const allRows = Number(await tree.getAttribute('data-rows'));
    const s0 = Date.now();
    await page.locator('.tree').evaluate((el) => (el.scrollTop = el.scrollHeight));
    await expect.poll(() => page.locator('[role="treeitem"]').last().getAttribute('data-path')).toMatch(/^\/var/);
    const scrollMs = Date.now() - s0;

    // Filter to the changed file; time the filter over all rows.
    const f0 = Date.now();
    await page.fill('#tree-filter', 'etc/group');
    const group = page.locator('[role="treeitem"][data-path="/etc/group"]');
    await group.waitFor();
    const filterMs = Date.now() - f0;
    expect(await group.textContent()).toContain('~ M');
    await group.click();
    await page.locator('table.textdiff tr.l-add').first().waitFor();
    expect(await page.locator('table.textdiff tr.l-add').allTextContents()).toContainEqual(expect.stringContaining('_ssh:x:101:'));
    await expect.poll(() => page.locator('tr[data-package="apt"]').textContent()).toMatch(/upgraded.*2\.6\.1.*2\.6\.2/);
    await shot(page, 'ui-diff-rootfs-group');
    fs.mkdirSync(path.dirname(timingsFile), { recursive: true });
    fs.writeFileSync(timingsFile, JSON.stringify({ allRows, renderMs, clickToTree, domRows, allRowsMs, scrollMs, filterMs }, null, 2));
    console.log(`rootfs diff: first rows ${renderMs} ms after the data arrived; click to tree ${clickToTree} ms (server diff included); ${domRows} rows in the DOM; opening all rows ${allRowsMs} ms, scrolling to the end ${scrollMs} ms; filter ${filterMs} ms`);
    expect(domRows).toBeLessThan(200); // virtualised
    expect(renderMs).toBeLessThan(1000);
    expect(foreign).toEqual([]);
    expect(consoleErrors).toEqual([]);
  }, 180_000);
});

const timingsFile = path.join(path.dirname(new URL(import.meta.url).pathname), '../../test-results/browser/diff-timings.json');
