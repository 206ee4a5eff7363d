// `admin verify` through the CLI: a clean deployment verifies; what malware
// would leave behind under /usr is found; /etc and /var changes are not.

import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { strata } from '../helpers/fixtures.js';
import { REF, STATEROOT, bootSysroot, makeSysroot } from '../helpers/sysroot.js';

describe('admin verify', () => {
  it('passes on a clean deployment and reports every tampered file outside /etc and /var', async () => {
    const s = makeSysroot();
    await s.commitVersion({ version: '1.0', files: { 'usr/bin/tool': '#!/bin/sh\necho tool\n', 'usr/lib/libx.so': 'library bytes\n' } });
    expect(strata(['admin', 'deploy', REF, '--sysroot', s.dir]).status).toBe(0);
    const dep = bootSysroot(s.dir);
    let r = strata(['admin', 'verify', '--sysroot', s.dir, '--booted', dep]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('no differences');

    // Configuration and state are meant to change.
    fs.writeFileSync(path.join(dep, 'etc/hostname'), 'changed\n');
    fs.writeFileSync(path.join(s.dir, 'ostree/deploy', STATEROOT, 'var/lib/x'), 'x');
    expect(strata(['admin', 'verify', '0', '--sysroot', s.dir]).status).toBe(0);

    // Tampering: same-size edit through the hardlink, a setuid bit, a dropped file, a removed file.
    const lib = path.join(dep, 'usr/lib/libx.so');
    fs.writeFileSync(lib, 'LIBRARY bytes\n');
    fs.chmodSync(path.join(dep, 'usr/bin/tool'), 0o4755);
    fs.writeFileSync(path.join(dep, 'usr/bin/backdoor'), 'evil');
    fs.rmSync(path.join(dep, 'usr/bin/hello'));
    r = strata(['admin', 'verify', '--sysroot', s.dir, '--booted', dep, '--json']);
    expect(r.status).toBe(1);
    const out = r.json<{ ok: boolean; differences: { path: string; kind: string; what?: string[] }[] }>();
    expect(out.ok).toBe(false);
    expect(out.differences).toEqual([
      { path: '/usr/bin/backdoor', kind: 'added' },
      { path: '/usr/bin/hello', kind: 'removed' },
      { path: '/usr/bin/tool', kind: 'modified', what: ['mode'] },
      { path: '/usr/lib/libx.so', kind: 'modified', what: ['content'] },
    ]);
    const human = strata(['admin', 'verify', '--sysroot', s.dir, '--booted', dep]);
    expect(human.status).toBe(1);
    expect(human.stdout).toContain('A  /usr/bin/backdoor');
    expect(human.stderr.trim().split('\n')).toHaveLength(1);
  });
});
