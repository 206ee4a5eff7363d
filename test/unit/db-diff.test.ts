// db diff: the dpkg status parser, the package comparison, the places a
// composed tree keeps its database, and `strata db diff` as a user runs it.

import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { commit } from '../../src/repo/commit.js';
import { dbDiff, diffPackages, parseDpkgStatus } from '../../src/repo/db-diff.js';
import { Repo } from '../../src/repo/repo.js';
import { codeOf } from '../helpers/errors.js';
import { strata, tmpDir } from '../helpers/fixtures.js';

process.env.STRATA_WORKERS ??= '1';

const stanza = (name: string, version: string, status = 'install ok installed', arch = 'amd64') =>
  `Package: ${name}\nStatus: ${status}\nPriority: optional\nArchitecture: ${arch}\nVersion: ${version}\nDescription: the ${name} package\n long description line\n .\n more\n`;

const STATUS_A = [stanza('apt', '2.6.1'), stanza('tzdata', '2024a-0+deb12u1', 'install ok installed', 'all'), stanza('libfoo', '1:1.0-1'), stanza('gone', '1.0'), stanza('oldconf', '1.0', 'deinstall ok config-files')].join('\n');
const STATUS_B = [stanza('apt', '2.6.2'), stanza('tzdata', '2024a-0+deb12u1', 'install ok installed', 'all'), stanza('libfoo', '1:0.9-1'), stanza('curl', '7.88.1-10+deb12u15')].join('\n');

describe('parseDpkgStatus', () => {
  it('reads installed packages and skips removed ones and continuation lines', () => {
    expect(parseDpkgStatus(STATUS_A)).toEqual([
      { name: 'apt', version: '2.6.1', architecture: 'amd64' },
      { name: 'tzdata', version: '2024a-0+deb12u1', architecture: 'all' },
      { name: 'libfoo', version: '1:1.0-1', architecture: 'amd64' },
      { name: 'gone', version: '1.0', architecture: 'amd64' },
    ]);
  });

  it('takes stanzas without a Status field (a plain package list) and CRLF line ends', () => {
    expect(parseDpkgStatus('Package: a\r\nVersion: 1\r\n\r\nPackage: b\r\nVersion: 2\r\n')).toEqual([
      { name: 'a', version: '1', architecture: '' },
      { name: 'b', version: '2', architecture: '' },
    ]);
  });
});

describe('diffPackages', () => {
  it('sorts packages into added, removed, upgraded and downgraded by Debian version order', () => {
    const r = diffPackages(parseDpkgStatus(STATUS_A), parseDpkgStatus(STATUS_B));
    expect(r.added.map((p) => p.name)).toEqual(['curl']);
    expect(r.removed.map((p) => p.name)).toEqual(['gone']);
    expect(r.upgraded).toEqual([{ name: 'apt', architecture: 'amd64', from: '2.6.1', to: '2.6.2' }]);
    expect(r.downgraded).toEqual([{ name: 'libfoo', architecture: 'amd64', from: '1:1.0-1', to: '1:0.9-1' }]);
    expect(r.unchanged).toBe(1);
  });

  it('matches a multi-arch package by name and architecture', () => {
    const a = [{ name: 'libc6', version: '2.36', architecture: 'amd64' }, { name: 'libc6', version: '2.36', architecture: 'i386' }];
    const b = [{ name: 'libc6', version: '2.37', architecture: 'amd64' }];
    const r = diffPackages(a, b);
    expect(r.upgraded).toEqual([{ name: 'libc6', architecture: 'amd64', from: '2.36', to: '2.37' }]);
    expect(r.removed).toEqual([{ name: 'libc6', version: '2.36', architecture: 'i386' }]);
  });
});

describe('dbDiff on commits', () => {
  let repo: string;
  beforeAll(async () => {
    const dir = tmpDir('strata-dbdiff-');
    repo = path.join(dir, 'repo');
    Repo.init(repo, 'archive');
    const put = (root: string, rel: string, text: string) => {
      fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      fs.writeFileSync(path.join(root, rel), text);
    };
    const a = path.join(dir, 'a');
    const b = path.join(dir, 'b');
    const none = path.join(dir, 'none');
    put(a, 'var/lib/dpkg/status', STATUS_A);
    // b is laid out as a composed tree: /var's content kept under /usr/share/factory, and /var empty.
    put(b, 'usr/share/factory/var/lib/dpkg/status', STATUS_B);
    fs.mkdirSync(path.join(b, 'var'), { recursive: true });
    put(none, 'etc/hostname', 'x\n');
    await commit({ repo, branch: 'os/a', source: a, timestamp: 1_700_000_000 });
    await commit({ repo, branch: 'os/b', source: b, timestamp: 1_700_000_100 });
    await commit({ repo, branch: 'os/none', source: none, timestamp: 1_700_000_200 });
  });

  it('reads each tree from where it keeps its database', () => {
    const r = dbDiff({ repo, from: 'os/a', to: 'os/b' });
    expect(r.fromDb).toBe('/var/lib/dpkg/status');
    expect(r.toDb).toBe('/usr/share/factory/var/lib/dpkg/status');
    expect(r.upgraded.map((p) => p.name)).toEqual(['apt']);
  });

  it('a tree without a dpkg database is PATH_NOT_FOUND', () => {
    expect(codeOf(() => dbDiff({ repo, from: 'os/a', to: 'os/none' }))).toBe('PATH_NOT_FOUND');
  });

  it('strata db diff prints the change, --json the data, and bad input one line with a non-zero exit', () => {
    const human = strata(['db', 'diff', 'os/a', 'os/b', '--repo', repo]);
    expect(human.status, human.stderr).toBe(0);
    expect(human.stdout).toContain('Upgraded:\n  apt 2.6.1 -> 2.6.2');
    expect(human.stdout).toContain('Downgraded:\n  libfoo 1:1.0-1 -> 1:0.9-1');
    expect(human.stdout).toContain('1 upgraded, 1 downgraded, 1 removed, 1 added, 1 unchanged');
    const json = strata(['db', 'diff', 'os/a', 'os/b', '--repo', repo, '--json']).json<{ added: { name: string }[] }>();
    expect(json.added.map((p) => p.name)).toEqual(['curl']);
    for (const args of [['db', 'diff', 'os/a', 'nope', '--repo', repo], ['db', 'diff', 'os/a', 'os/none', '--repo', repo], ['db', 'diff', 'os/a', 'os/b']]) {
      const r = strata(args, { env: { STRATA_REPO: '' } });
      expect(r.status).not.toBe(0);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^strata: /);
    }
  });
});
