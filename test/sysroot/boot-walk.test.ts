// The device walk through the CLI and the bootloader model: deploy an update
// with boot counting, boot it, let health checks bless it or fail it until
// the bootloader falls back, and see status tell the story.

import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { strata } from '../helpers/fixtures.js';
import { REF, STATEROOT, bootSysroot, makeSysroot } from '../helpers/sysroot.js';
import { boot } from '../helpers/boot-model.js';
import type { StatusResult } from '../../src/sysroot/status.js';

const CHECK = 'usr/lib/strata/health.d/required.d/10-service';
const good = { [CHECK]: '#!/bin/sh\necho service answers\nexit 0\n' };
const broken = { [CHECK]: '#!/bin/sh\necho "service does not answer" >&2\nexit 3\n' };

function cli(args: string[], booted?: string) {
  return strata([...args, ...(booted ? ['--booted', booted] : [])]);
}

function statusOf(sysroot: string, booted: string): StatusResult {
  const r = cli(['admin', 'status', '--sysroot', sysroot, '--json'], booted);
  expect(r.status, r.stderr).toBe(0);
  return r.json<StatusResult>();
}

describe('boot counting, health checks and automatic rollback', () => {
  it('v2 fails its checks on every try; the bootloader falls back to v1; status shows v2 bad and nothing is lost', async () => {
    const s = makeSysroot({ tries: 3 });
    await s.commitVersion({ version: '1.0', files: good });
    expect(cli(['admin', 'deploy', REF, '--sysroot', s.dir]).status).toBe(0);
    const v1 = bootSysroot(s.dir);
    let h = cli(['health', 'run', '--sysroot', s.dir, '--no-reboot', '--json'], v1);
    expect(h.status, h.stderr).toBe(0);
    expect(h.json<{ blessed: boolean }>().blessed).toBe(true);

    fs.writeFileSync(path.join(v1, 'etc/hostname'), 'kept-host\n');
    const varFile = path.join(s.dir, 'ostree/deploy', STATEROOT, 'var/lib/app.db');
    fs.writeFileSync(varFile, 'records\n');

    await s.commitVersion({ version: '2.0', files: broken });
    expect(cli(['admin', 'deploy', REF, '--sysroot', s.dir], v1).status).toBe(0);
    const entries = () => fs.readdirSync(path.join(s.dir, 'boot/loader/entries')).sort();
    expect(entries()).toEqual([`ostree-1-${STATEROOT}.conf`, `ostree-2-${STATEROOT}+3.conf`]);

    for (let attempt = 1; attempt <= 3; attempt++) {
      const b = boot(s.dir);
      expect(b.entry.version).toBe('2');
      expect(b.entry.triesLeft).toBe(3 - attempt);
      h = cli(['health', 'run', '--sysroot', s.dir, '--no-reboot', '--json'], fs.realpathSync(b.deployment));
      expect(h.status).toBe(1);
      const r = h.json<{ ok: boolean; rebootRequested: boolean; report: { checks: { reason: string; outputTail: string }[] } }>();
      expect(r.rebootRequested).toBe(true);
      expect(r.report.checks[0].outputTail).toContain('service does not answer');
    }
    // Tries used up: the model boots v1.
    const fallback = bootSysroot(s.dir);
    expect(fallback).toBe(v1);
    h = cli(['health', 'run', '--sysroot', s.dir, '--no-reboot', '--json'], fallback);
    expect(h.status, h.stderr).toBe(0);
    expect(h.json<{ rolledBack: { from: string } | null }>().rolledBack?.from).toContain(STATEROOT);

    const st = statusOf(s.dir, fallback);
    expect(st.deployments.map((d) => [d.version, d.booted, d.default, d.bad])).toEqual([
      ['1.0', true, true, false],
      ['2.0', false, false, true],
    ]);
    expect(st.deployments[1].health?.failed[0]).toMatchObject({ name: '10-service' });
    // The next boots stay on v1; its /etc and the shared /var are as they were.
    expect(bootSysroot(s.dir)).toBe(v1);
    expect(fs.readFileSync(path.join(v1, 'etc/hostname'), 'utf8')).toBe('kept-host\n');
    expect(fs.readFileSync(varFile, 'utf8')).toBe('records\n');
    const human = cli(['admin', 'status', '--sysroot', s.dir], v1);
    expect(human.stdout).toMatch(/2\.0[\s\S]*BAD|BAD[\s\S]*boot tries exhausted/);
  });

  it('a healthy update is blessed on its first boot and keeps booting', async () => {
    const s = makeSysroot({ tries: 2 });
    await s.commitVersion({ version: '1.0', files: good });
    cli(['admin', 'deploy', REF, '--sysroot', s.dir]);
    const v1 = bootSysroot(s.dir);
    expect(cli(['health', 'run', '--sysroot', s.dir, '--no-reboot'], v1).status).toBe(0);
    await s.commitVersion({ version: '2.0', files: good });
    expect(cli(['admin', 'deploy', REF, '--sysroot', s.dir], v1).status).toBe(0);
    const v2 = bootSysroot(s.dir);
    expect(v2).not.toBe(v1);
    const h = cli(['health', 'run', '--sysroot', s.dir, '--no-reboot'], v2);
    expect(h.status, h.stderr).toBe(0);
    expect(h.stdout).toContain('blessed');
    expect(fs.readdirSync(path.join(s.dir, 'boot/loader/entries')).sort()).toEqual([`ostree-1-${STATEROOT}.conf`, `ostree-2-${STATEROOT}.conf`]);
    for (let i = 0; i < 3; i++) expect(bootSysroot(s.dir)).toBe(v2);
    const st = statusOf(s.dir, v2);
    expect(st.deployments[0]).toMatchObject({ version: '2.0', booted: true, triesLeft: null, bad: false, health: { ok: true } });
  });

  it('runs the reboot command after a failed required check, and only while the boot is counted', async () => {
    const s = makeSysroot({ tries: 1 });
    await s.commitVersion({ version: '1.0', files: broken });
    cli(['admin', 'deploy', REF, '--sysroot', s.dir]);
    const b = bootSysroot(s.dir);
    const marker = path.join(path.dirname(s.dir), 'rebooted');
    let h = cli(['health', 'run', '--sysroot', s.dir, '--reboot-command', `touch ${marker}`], b);
    expect(h.status).toBe(1);
    expect(fs.existsSync(marker)).toBe(true);
    fs.rmSync(marker);
    // Not counted any more (no counter on a plain deploy without tries): no reboot loop.
    const s2 = makeSysroot();
    await s2.commitVersion({ version: '1.0', files: broken });
    cli(['admin', 'deploy', REF, '--sysroot', s2.dir]);
    h = cli(['health', 'run', '--sysroot', s2.dir, '--reboot-command', `touch ${marker}`], bootSysroot(s2.dir));
    expect(h.status).toBe(1);
    expect(fs.existsSync(marker)).toBe(false);
    expect(h.stderr).toContain('no automatic rollback');
  });
});
