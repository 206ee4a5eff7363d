// The bootloader model is the referee for deployments and boot counting, so
// its own rules are pinned here on hand-written entry sets: the UAPI.10
// version order (checked against systemd-analyze when it is installed), the
// systemd-boot menu order, and what one boot does to the counters.

import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { boot, compareVersions, pickEntry, readEntries, sortEntries, type ModelEntry } from '../helpers/boot-model.js';
import { tmpDir } from '../helpers/fixtures.js';

const BOOTCSUM_A = 'a'.repeat(64);
const BOOTCSUM_B = 'b'.repeat(64);

/** A boot directory with OSTree's layout: loader -> loader.1, entries, and the kernels they name. */
function makeBoot(entries: Record<string, string>, opts: { loaderLink?: boolean } = {}): { sysroot: string; bootDir: string; entriesDir: string } {
  const sysroot = tmpDir('strata-bootmodel-');
  const bootDir = path.join(sysroot, 'boot');
  const real = path.join(bootDir, opts.loaderLink === false ? 'loader' : 'loader.1');
  const entriesDir = path.join(real, 'entries');
  fs.mkdirSync(entriesDir, { recursive: true });
  if (opts.loaderLink !== false) fs.symlinkSync('loader.1', path.join(bootDir, 'loader'));
  for (const [file, text] of Object.entries(entries)) {
    fs.writeFileSync(path.join(entriesDir, file), text);
    for (const m of text.matchAll(/^\s*(?:linux|initrd)\s+(\S+)/gm)) {
      fs.mkdirSync(path.dirname(path.join(bootDir, m[1])), { recursive: true });
      fs.writeFileSync(path.join(bootDir, m[1]), 'kernel or initrd\n');
    }
  }
  return { sysroot, bootDir, entriesDir: path.join(bootDir, 'loader', 'entries') };
}

/** A deployment the way OSTree links it: /ostree/boot.1 -> boot.1.1, .../<bootcsum>/<n> -> the deploy dir. */
function addDeployment(sysroot: string, bootcsum: string, n: number, checksum: string): string {
  const deploy = path.join(sysroot, 'ostree/deploy/debian/deploy', `${checksum}.0`);
  fs.mkdirSync(path.join(deploy, 'usr'), { recursive: true });
  const bootcsumDir = path.join(sysroot, 'ostree/boot.1.1/debian', bootcsum);
  fs.mkdirSync(bootcsumDir, { recursive: true });
  fs.symlinkSync(`../../../deploy/debian/deploy/${checksum}.0`, path.join(bootcsumDir, String(n)));
  if (!fs.existsSync(path.join(sysroot, 'ostree/boot.1'))) fs.symlinkSync('boot.1.1', path.join(sysroot, 'ostree/boot.1'));
  return deploy;
}

function ostreeEntry(n: number, bootcsum: string, index: number, extra = ''): string {
  return [
    `title Debian GNU/Linux 12 (ostree:${index})`,
    `version ${n}`,
    `options root=LABEL=root rw ostree=/ostree/boot.1/debian/${bootcsum}/${index}`,
    `linux /ostree/debian-${bootcsum}/vmlinuz-6.1.0`,
    `initrd /ostree/debian-${bootcsum}/initramfs-6.1.0.img`,
    extra,
  ].join('\n');
}

function entry(file: string, fields: Partial<ModelEntry> = {}): ModelEntry {
  const m = /\+(\d+)(?:-(\d+))?\.conf$/.exec(file);
  return {
    file,
    id: file.replace(/\+\d+(?:-\d+)?\.conf$/, '.conf').toLowerCase(),
    initrd: [],
    options: '',
    ...(m ? { triesLeft: Number(m[1]), triesDone: Number(m[2] ?? 0) } : {}),
    ...fields,
  };
}

const files = (list: ModelEntry[]) => list.map((e) => e.file);

describe('compareVersions (UAPI.10)', () => {
  it('orders numbers as numbers, not as text', () => {
    expect(compareVersions('10', '9')).toBeGreaterThan(0);
    expect(compareVersions('1.10', '1.9')).toBeGreaterThan(0);
    expect(compareVersions('1.9', '1.10')).toBeLessThan(0);
    expect(compareVersions('00123', '123')).toBe(0);
    expect(compareVersions('ostree-10-debian.conf', 'ostree-9-debian.conf')).toBeGreaterThan(0);
  });

  it('agrees with every example of the specification', () => {
    const equal: [string, string][] = [['11', '11'], ['systemd-123', 'systemd-123'], ['11α', '11β'], ['1_', '1'], ['_1', '1'], ['1+', '1'], ['+1', '1']];
    const less: [string, string][] = [
      ['bar-123', 'foo-123'], ['123', '123a'], ['123', '123.a'], ['123.a', '123.b'], ['123.a', '123a'],
      ['B', 'a'], ['', '0'], ['0', '0.'], ['0', '0.0'], ['~', '0'], ['~', ''], ['1_', '1.2'], ['1.3.3', '1_2_3'],
      ['1+', '1.2'], ['1.3.3', '1+2+3'],
    ];
    for (const [a, b] of equal) expect(compareVersions(a, b), `${a} == ${b}`).toBe(0);
    for (const [a, b] of less) {
      expect(compareVersions(a, b), `${a} < ${b}`).toBeLessThan(0);
      expect(compareVersions(b, a), `${b} > ${a}`).toBeGreaterThan(0);
    }
    const chain = ['122.1', '123~rc1-1', '123', '123-a', '123-a.1', '123-1', '123-1.1', '123^post1', '123.a-1', '123.1-1', '123a-1', '124-1'];
    for (let i = 0; i < chain.length; i++) {
      for (let j = 0; j < chain.length; j++) {
        expect(Math.sign(compareVersions(chain[i], chain[j])), `${chain[i]} vs ${chain[j]}`).toBe(Math.sign(i - j));
      }
    }
  });

  const analyze = spawnSync('systemd-analyze', ['compare-versions', '1', '2'], { encoding: 'utf8' });
  it.skipIf(analyze.error !== undefined)('agrees with systemd-analyze compare-versions on random strings', () => {
    const piece = fc.constantFrom('0', '1', '9', '10', '007', 'a', 'B', 'rc', '.', '-', '~', '^', '_', '+');
    const version = fc.array(piece, { maxLength: 6 }).map((p) => p.join(''));
    fc.assert(
      fc.property(version, version, (a, b) => {
        // Without an operator, systemd-analyze exits 0 for ==, 11 for > and 12 for <.
        const r = spawnSync('systemd-analyze', ['compare-versions', '--', a, b], { encoding: 'utf8' });
        const expected = ({ 0: 0, 11: 1, 12: -1 } as Record<number, number>)[r.status ?? -1];
        expect(expected, r.stdout + r.stderr).toBeDefined();
        expect(Math.sign(compareVersions(a, b)), r.stdout).toBe(expected);
      }),
      { numRuns: 300 },
    );
  });
});

describe('sortEntries (systemd-boot menu order)', () => {
  it('puts the highest OSTree index first, 10 before 9', () => {
    const list = ['ostree-1-debian.conf', 'ostree-10-debian.conf', 'ostree-9-debian.conf', 'ostree-2-debian.conf'].map((f) => entry(f));
    expect(files(sortEntries(list))).toEqual(['ostree-10-debian.conf', 'ostree-9-debian.conf', 'ostree-2-debian.conf', 'ostree-1-debian.conf']);
  });

  it('orders by version, newest first, when both entries have a sort-key', () => {
    const list = [entry('x-a.conf', { sortKey: 'debian', version: '1.9' }), entry('x-b.conf', { sortKey: 'debian', version: '1.10' })];
    expect(files(sortEntries(list))).toEqual(['x-b.conf', 'x-a.conf']);
  });

  it('ignores version without a sort-key: the file name decides', () => {
    // systemd-boot compares versions only under equal sort-keys; otherwise the id alone.
    const list = [entry('os-1.conf', { version: '5' }), entry('os-2.conf', { version: '1' })];
    expect(files(sortEntries(list))).toEqual(['os-2.conf', 'os-1.conf']);
  });

  it('puts entries with a sort-key before those without, then sort-key A-Z, then machine-id', () => {
    const list = [
      entry('zzz-99.conf'),
      entry('b.conf', { sortKey: 'fedora', version: '40' }),
      entry('a.conf', { sortKey: 'debian', machineId: 'ffff', version: '1' }),
      entry('c.conf', { sortKey: 'debian', machineId: '0000', version: '1' }),
    ];
    expect(files(sortEntries(list))).toEqual(['c.conf', 'a.conf', 'b.conf', 'zzz-99.conf']);
  });

  it('puts bad entries (no tries left) after all others, whatever their version', () => {
    const list = [entry('ostree-2-debian+0-3.conf'), entry('ostree-1-debian.conf'), entry('ostree-0-debian+1-2.conf'), entry('a.conf', { sortKey: 'a' }), entry('b+0.conf', { sortKey: 'a' })];
    expect(files(sortEntries(list))).toEqual(['a.conf', 'ostree-1-debian.conf', 'ostree-0-debian+1-2.conf', 'b+0.conf', 'ostree-2-debian+0-3.conf']);
  });

  it('breaks a tie on the same id by more tries left, then fewer tries done', () => {
    const list = [entry('os+1-2.conf'), entry('os+2-0.conf'), entry('os+2-1.conf')];
    expect(files(sortEntries(list))).toEqual(['os+2-0.conf', 'os+2-1.conf', 'os+1-2.conf']);
  });
});

describe('readEntries', () => {
  it('parses the key/value format through the loader symlink', () => {
    const { bootDir } = makeBoot({
      'ostree-1-debian+3.conf': '# written by a test\n  title   "Debian 12"  \nversion 1\nsort-key debian\nmachine-id 0123456789abcdef0123456789abcdef\n' +
        'linux /k/vmlinuz\ninitrd /k/ucode.img\ninitrd /k/initramfs.img\noptions root=/dev/vda2 rw\noptions ostree=/ostree/boot.1/debian/x/0\nbogus\n',
      '.hidden.conf': 'linux /k/vmlinuz\n',
      'auto-windows.conf': 'linux /k/vmlinuz\n',
      'notes.txt': 'linux /k/vmlinuz\n',
    });
    const list = readEntries(bootDir);
    expect(list).toEqual([{
      file: 'ostree-1-debian+3.conf',
      id: 'ostree-1-debian.conf',
      title: 'Debian 12',
      version: '1',
      sortKey: 'debian',
      machineId: '0123456789abcdef0123456789abcdef',
      linux: '/k/vmlinuz',
      initrd: ['/k/ucode.img', '/k/initramfs.img'],
      options: 'root=/dev/vda2 rw ostree=/ostree/boot.1/debian/x/0',
      triesLeft: 3,
      triesDone: 0,
    }]);
  });

  it('reads a counter only where systemd-boot does: the last +, digits, then .conf', () => {
    const { bootDir } = makeBoot({
      'a+1+2-5.conf': 'linux /k\n',
      'b+x.conf': 'linux /k\n',
      'c+3-1-2.conf': 'linux /k\n',
      'D+4.CONF': 'linux /k\n',
    });
    const byFile = Object.fromEntries(readEntries(bootDir).map((e) => [e.file, e]));
    expect(byFile['a+1+2-5.conf']).toMatchObject({ id: 'a+1.conf', triesLeft: 2, triesDone: 5 });
    expect(byFile['b+x.conf'].id).toBe('b+x.conf');
    expect(byFile['b+x.conf'].triesLeft).toBeUndefined();
    expect(byFile['c+3-1-2.conf'].id).toBe('c+3-1-2.conf');
    expect(byFile['c+3-1-2.conf'].triesLeft).toBeUndefined();
    expect(byFile['D+4.CONF']).toMatchObject({ id: 'd.conf', triesLeft: 4, triesDone: 0 });
  });

  it('reads no entries when there is no loader directory', () => {
    const sysroot = tmpDir('strata-bootmodel-');
    expect(readEntries(path.join(sysroot, 'boot'))).toEqual([]);
    expect(() => pickEntry(path.join(sysroot, 'boot'))).toThrow(/no bootable entry/);
  });
});

describe('pickEntry', () => {
  it('drops an entry whose kernel is missing, as systemd-boot does', () => {
    const { bootDir } = makeBoot({ 'ostree-1-debian.conf': 'linux /k1\n', 'ostree-2-debian.conf': 'linux /k2\n' });
    expect(pickEntry(bootDir).file).toBe('ostree-2-debian.conf');
    fs.rmSync(path.join(bootDir, 'k2'));
    expect(pickEntry(bootDir).file).toBe('ostree-1-debian.conf');
    fs.rmSync(path.join(bootDir, 'k1'));
    expect(() => pickEntry(bootDir)).toThrow(/kernel \/k1 does not exist/);
  });

  it('drops an entry without a linux line', () => {
    const { bootDir } = makeBoot({ 'ostree-9-debian.conf': 'title no kernel\n', 'ostree-1-debian.conf': 'linux /k1\n' });
    expect(pickEntry(bootDir).file).toBe('ostree-1-debian.conf');
  });
});

describe('boot', () => {
  /** Old deployment blessed at index 1, new one counted at index 0, as a deploy with boot counting writes them. */
  function twoDeployments() {
    const made = makeBoot({
      'ostree-2-debian+3.conf': ostreeEntry(2, BOOTCSUM_B, 0),
      'ostree-1-debian.conf': ostreeEntry(1, BOOTCSUM_A, 1),
    });
    const newDeploy = addDeployment(made.sysroot, BOOTCSUM_B, 0, 'c'.repeat(64));
    const oldDeploy = addDeployment(made.sysroot, BOOTCSUM_A, 1, 'd'.repeat(64));
    return { ...made, newDeploy, oldDeploy };
  }

  it('counts each try down, then falls back to the previous deployment when tries run out', () => {
    const { sysroot, entriesDir, newDeploy, oldDeploy } = twoDeployments();
    const seen: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = boot(sysroot);
      expect(r.ostree).toBe(`/ostree/boot.1/debian/${BOOTCSUM_B}/0`);
      expect(r.deployment).toBe(newDeploy);
      seen.push(r.entry.file);
    }
    expect(seen).toEqual(['ostree-2-debian+2-1.conf', 'ostree-2-debian+1-2.conf', 'ostree-2-debian+0-3.conf']);
    expect(fs.readdirSync(entriesDir).sort()).toEqual(['ostree-1-debian.conf', 'ostree-2-debian+0-3.conf']);

    const fallback = boot(sysroot);
    expect(fallback.entry.file).toBe('ostree-1-debian.conf');
    expect(fallback.ostree).toBe(`/ostree/boot.1/debian/${BOOTCSUM_A}/1`);
    expect(fallback.deployment).toBe(oldDeploy);
    expect(fallback.cmdline).toBe(`root=LABEL=root rw ostree=/ostree/boot.1/debian/${BOOTCSUM_A}/1`);
    // Booting a blessed entry renames nothing; the bad one keeps its counters.
    expect(fs.readdirSync(entriesDir).sort()).toEqual(['ostree-1-debian.conf', 'ostree-2-debian+0-3.conf']);
  });

  it('keeps booting a blessed entry once the counter is removed', () => {
    const { sysroot, entriesDir } = twoDeployments();
    boot(sysroot);
    fs.renameSync(path.join(entriesDir, 'ostree-2-debian+2-1.conf'), path.join(entriesDir, 'ostree-2-debian.conf'));
    for (let i = 0; i < 2; i++) expect(boot(sysroot).entry.file).toBe('ostree-2-debian.conf');
    expect(fs.readdirSync(entriesDir).sort()).toEqual(['ostree-1-debian.conf', 'ostree-2-debian.conf']);
  });

  it('boots a bad entry when nothing else exists, still counting tries done', () => {
    const { sysroot, entriesDir } = makeBoot({ 'ostree-1-debian+0-3.conf': ostreeEntry(1, BOOTCSUM_A, 0) });
    addDeployment(sysroot, BOOTCSUM_A, 0, 'e'.repeat(64));
    expect(boot(sysroot).entry).toMatchObject({ file: 'ostree-1-debian+0-4.conf', triesLeft: 0, triesDone: 4 });
    expect(fs.readdirSync(entriesDir)).toEqual(['ostree-1-debian+0-4.conf']);
  });

  it('empties /run, as a reboot does', () => {
    const { sysroot } = twoDeployments();
    fs.mkdirSync(path.join(sysroot, 'run/ostree'), { recursive: true });
    fs.writeFileSync(path.join(sysroot, 'run/ostree/staged-deployment'), 'x');
    boot(sysroot);
    expect(fs.readdirSync(path.join(sysroot, 'run'))).toEqual([]);
  });

  it('follows an absolute deployment symlink inside the sysroot, not on the host', () => {
    const { sysroot } = makeBoot({ 'ostree-1-debian.conf': ostreeEntry(1, BOOTCSUM_A, 0) });
    const deploy = path.join(sysroot, 'ostree/deploy/debian/deploy/f.0');
    fs.mkdirSync(deploy, { recursive: true });
    fs.mkdirSync(path.join(sysroot, 'ostree/boot.1/debian', BOOTCSUM_A), { recursive: true });
    fs.symlinkSync('/ostree/deploy/debian/deploy/f.0', path.join(sysroot, 'ostree/boot.1/debian', BOOTCSUM_A, '0'));
    expect(boot(sysroot).deployment).toBe(deploy);
  });

  it('fails when the entry has no ostree= argument or it leads nowhere', () => {
    const a = makeBoot({ 'ostree-1-debian.conf': 'linux /k\noptions root=/dev/vda\n' });
    expect(() => boot(a.sysroot)).toThrow(/no ostree= argument/);
    const b = makeBoot({ 'ostree-1-debian.conf': ostreeEntry(1, BOOTCSUM_A, 0) });
    expect(() => boot(b.sysroot)).toThrow(/does not lead to a deployment/);
  });

  it('fails when an initrd is missing', () => {
    const { sysroot, bootDir } = twoDeployments();
    fs.rmSync(path.join(bootDir, `ostree/debian-${BOOTCSUM_B}/initramfs-6.1.0.img`));
    expect(() => boot(sysroot)).toThrow(/initrd .* does not exist/);
  });

  it('fails clearly when there is no entry at all', () => {
    const { sysroot } = makeBoot({});
    expect(() => boot(sysroot)).toThrow(/no bootable entry in .*loader\/entries/);
  });
});
