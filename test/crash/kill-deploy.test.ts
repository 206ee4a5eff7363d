// SIGKILL `strata admin deploy` and `strata admin finalize-staged` at random
// moments, at least 100 times. After every kill the bootloader model boots
// the old default or the new deployment (a complete one), `admin status`
// works, and after `admin cleanup` nothing is left that the boot entries do
// not name. The randomness is seeded; rerun one with STRATA_CRASH_SEED=<seed>.

import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CLI, strata } from '../helpers/fixtures.js';
import { rng } from '../helpers/random.js';
import { STATEROOT, bootSysroot, makeSysroot } from '../helpers/sysroot.js';
import { pickEntry } from '../helpers/boot-model.js';
import { Sysroot } from '../../src/sysroot/sysroot.js';
import { status } from '../../src/sysroot/status.js';
import { cleanup } from '../../src/sysroot/manage.js';

const SEED = Number(process.env.STRATA_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
const KILLS = Number(process.env.STRATA_CRASH_KILLS ?? 100);

/** Runs the CLI and kills it after `ms`; resolves with whether it finished first. */
function runAndKill(args: string[], ms: number): Promise<{ finished: boolean; status: number | null }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: 'ignore' });
    let finished = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('exit', (code) => {
      clearTimeout(timer);
      finished = code !== null;
      resolve({ finished, status: code });
    });
  });
}

async function timed(args: string[]): Promise<number> {
  const t = Date.now();
  const r = await runAndKill(args, 60_000);
  if (r.status !== 0) throw new Error(`strata ${args.join(' ')} failed with ${r.status}`);
  return Date.now() - t;
}

/** A tree big enough that deploying it takes a while: many small files in many directories. */
function bulk(version: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (let d = 0; d < 30; d++) for (let f = 0; f < 20; f++) files[`usr/share/pkg${d}/f${f}`] = `${version} ${d} ${f}\n`.repeat(1 + ((d * f) % 50));
  for (let e = 0; e < 40; e++) files[`usr/etc/conf.d/c${e}.conf`] = `setting=${version}.${e}\n`;
  return files;
}

/** The deployment directory the model's default entry boots, and that it is whole. */
function bootedByModel(sysroot: string): string {
  const entry = pickEntry(path.join(sysroot, 'boot'));
  const arg = entry.options.split(' ').find((a) => a.startsWith('ostree='));
  const dir = fs.realpathSync(path.join(sysroot, (arg as string).slice(7)));
  for (const f of ['usr/bin/hello', 'etc/hostname', 'etc/conf.d/c39.conf', 'usr/share/pkg29/f19']) {
    if (!fs.existsSync(path.join(dir, f))) throw new Error(`the default deployment ${dir} lacks ${f}`);
  }
  return dir;
}

describe('SIGKILL during deploy and finalize-staged', () => {
  it(`leaves a bootable old or new configuration every time (seed ${SEED})`, async () => {
    const rand = rng(SEED);
    const s = makeSysroot();
    const v1 = await s.commitVersion({ version: '1', files: bulk('1') }, 'os/v1');
    const v2 = await s.commitVersion({ version: '2', files: bulk('2') }, 'os/v2');
    const v3 = await s.commitVersion({ version: '3', files: bulk('3') }, 'os/v3');
    await timed(['admin', 'deploy', v1, '--sysroot', s.dir]);
    const booted = bootSysroot(s.dir);
    fs.writeFileSync(path.join(booted, 'etc/hostname'), 'local\n');
    const base = ['--sysroot', s.dir, '--booted', booted];
    // The window to draw kill moments from: a whole deploy, measured.
    const window = Math.max(await timed(['admin', 'deploy', v2, ...base]), await timed(['admin', 'deploy', v3, ...base]));
    const checksumOf = (dir: string) => path.basename(dir).split('.')[0];

    let kills = 0;
    let interrupted = 0;
    for (let i = 0; kills < KILLS; i++) {
      const sysroot = Sysroot.open(s.dir);
      const before = sysroot.deployments()[0].checksum;
      const target = before === v2 ? v3 : v2;
      const finalize = i % 4 === 3;
      if (finalize) {
        expect((await runAndKill(['admin', 'deploy', target, '--stage', ...base], 60_000)).status).toBe(0);
      }
      const args = finalize ? ['admin', 'finalize-staged', ...base] : ['admin', 'deploy', target, ...base, ...(rand() < 0.5 ? ['--retain', '1'] : [])];
      const r = await runAndKill(args, Math.floor(window * (0.15 + rand())));
      kills++;
      if (!r.finished) interrupted++;
      else expect(r.status, `${args.join(' ')} exited ${r.status}`).toBe(0);

      // The bootloader finds a whole old or new default.
      const now = checksumOf(bootedByModel(s.dir));
      expect([before, target]).toContain(now);
      if (r.finished) expect(now).toBe(target);
      expect(() => status({ sysroot: s.dir, booted })).not.toThrow();
      if (finalize && now !== target) {
        // The shutdown was cut short: the next run of the service finishes the job.
        expect((await runAndKill(['admin', 'finalize-staged', ...base], 60_000)).status).toBe(0);
        expect(checksumOf(bootedByModel(s.dir))).toBe(target);
      }
      if (i % 10 === 9) {
        cleanup({ sysroot: s.dir, booted });
        const list = sysroot.deployments();
        const named = new Set(list.map((d) => `${d.checksum}.${d.serial}`));
        const onDisk = fs.readdirSync(path.join(s.dir, 'ostree/deploy', STATEROOT, 'deploy'));
        for (const n of onDisk) expect(named.has(n.replace(/\.origin$|\.state\.json$/, '')), `stray ${n}`).toBe(true);
        const kernels = fs.readdirSync(path.join(s.dir, 'boot/ostree'));
        expect(kernels.every((k) => list.some((d) => k === `${STATEROOT}-${d.bootcsum}`))).toBe(true);
      }
    }
    // The local /etc change survived every merge; the CLI agrees with the library.
    expect(fs.readFileSync(path.join(bootedByModel(s.dir), 'etc/hostname'), 'utf8')).toBe('local\n');
    expect(strata(['admin', 'status', ...base]).status).toBe(0);
    expect(interrupted).toBeGreaterThan(KILLS / 3);
  }, 400_000);
});
