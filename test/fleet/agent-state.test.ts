// The agent's state file and /etc digest: atomic, private, loud when
// broken; the digest stable across machines and sensitive to every change.

import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { emptyState, loadState, saveState } from '../../src/fleet/agent/state.js';
import { etcDigest, etcDigestOfDir, readEtcEntries } from '../../src/fleet/agent/etc-digest.js';
import { parseLabels } from '../../src/fleet/agent/agent.js';
import { strata, tmpDir } from '../helpers/fixtures.js';

describe('agent state file', () => {
  it('a missing file is a fresh agent; saved state reads back, mode 0600, no temp files left', () => {
    const dir = tmpDir('strata-agent-state-');
    const file = path.join(dir, 'sub/agent.json');
    expect(loadState(file)).toEqual(emptyState());
    const s = { ...emptyState(), deviceId: 'dev_1', token: 'secret', outbox: [{ state: 'booted' as const, commit: 'a'.repeat(64) }] };
    saveState(file, s);
    expect(loadState(file)).toEqual(s);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    saveState(file, { ...s, deviceId: 'dev_2' });
    expect(loadState(file).deviceId).toBe('dev_2');
    expect(fs.readdirSync(path.dirname(file))).toEqual(['agent.json']);
  });

  it('an existing world-readable file becomes 0600 on the next save', () => {
    const file = path.join(tmpDir('strata-agent-state-'), 'agent.json');
    fs.writeFileSync(file, JSON.stringify(emptyState()), { mode: 0o644 });
    saveState(file, { ...emptyState(), token: 't' });
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  });

  it('a corrupt or foreign state file is AGENT_STATE_INVALID, not silently replaced', () => {
    const file = path.join(tmpDir('strata-agent-state-'), 'agent.json');
    for (const text of ['{"version": 1, "phase"', '[]', '{"version": 99, "phase": {"name": "idle"}}', 'null']) {
      fs.writeFileSync(file, text);
      expect(() => loadState(file), text).toThrow(expect.objectContaining({ code: 'AGENT_STATE_INVALID' }));
      expect(fs.readFileSync(file, 'utf8')).toBe(text);
    }
  });

  it('an older file without newer fields loads with their defaults', () => {
    const file = path.join(tmpDir('strata-agent-state-'), 'agent.json');
    fs.writeFileSync(file, JSON.stringify({ version: 1, phase: { name: 'idle' }, deviceId: 'dev_9' }));
    const s = loadState(file);
    expect(s.deviceId).toBe('dev_9');
    expect(s.outbox).toEqual([]);
    expect(s.hold).toBeNull();
  });

  it('the CLI: run without enrollment and bad flags are one line and a non-zero exit', () => {
    const dir = tmpDir('strata-agent-cli-');
    const state = path.join(dir, 'agent.json');
    let r = strata(['agent', 'run', '--once', '--sysroot', dir, '--state', state]);
    expect(r.status).toBe(78);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('strata agent enroll');
    fs.writeFileSync(state, 'garbage');
    r = strata(['agent', 'run', '--once', '--sysroot', dir, '--state', state, '--token', 't', '--server', 'http://127.0.0.1:1/']);
    expect(r.status).toBe(65);
    expect(fs.readFileSync(state, 'utf8')).toBe('garbage');
    r = strata(['agent', 'run', '--once', '--window', 'mon 9-5', '--state', state]);
    expect(r.status).toBe(2);
    r = strata(['agent', 'enroll', '--server', 'ftp://x', '--enrollment-token', 'e', '--name', 'd1', '--state', path.join(dir, 'new.json')]);
    expect(r.status).toBe(2);
    expect(fs.existsSync(path.join(dir, 'new.json'))).toBe(false);
    r = strata(['agent', 'enroll', '--server', 'http://127.0.0.1:1', '--enrollment-token', 'e', '--name', 'd1', '--labels', 'nokey', '--state', path.join(dir, 'new.json')]);
    expect(r.status).toBe(2);
    r = strata(['agent', 'enroll', '--server', 'http://127.0.0.1:1', '--enrollment-token', 'e', '--name', 'd1', '--state', path.join(dir, 'new.json')]);
    expect(r.status).toBe(69);
    expect(r.stderr).toMatch(/cannot reach the fleet server/);
    expect(fs.existsSync(path.join(dir, 'new.json'))).toBe(false);
  });

  it('labels parse as k=v pairs', () => {
    expect(parseLabels('site=lyon, rack=3,empty=')).toEqual({ site: 'lyon', rack: '3', empty: '' });
    expect(() => parseLabels('=x')).toThrow(expect.objectContaining({ code: 'USAGE' }));
  });
});

describe('/etc digest', () => {
  function makeEtc(root: string): string {
    fs.mkdirSync(path.join(root, 'app/conf.d'), { recursive: true });
    fs.writeFileSync(path.join(root, 'hostname'), 'device\n');
    fs.writeFileSync(path.join(root, 'app/app.conf'), 'level=1\n');
    fs.writeFileSync(path.join(root, 'shadow'), 'root:*:\n', { mode: 0o640 });
    fs.chmodSync(path.join(root, 'shadow'), 0o640);
    fs.symlinkSync('../usr/share/zoneinfo/UTC', path.join(root, 'localtime'));
    return root;
  }

  it('is the same for the same tree made twice, in any order and at any time', () => {
    const a = makeEtc(path.join(tmpDir('strata-etc-'), 'etc'));
    const b = makeEtc(path.join(tmpDir('strata-etc-'), 'etc'));
    fs.utimesSync(path.join(b, 'hostname'), new Date(0), new Date(0));
    expect(etcDigestOfDir(a)).toBe(etcDigestOfDir(b));
    expect(etcDigest(readEtcEntries(a).reverse())).toBe(etcDigestOfDir(a));
    expect(etcDigestOfDir(a)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('changes with content, mode, owner, a link target, an added empty directory, a rename', () => {
    const base = etcDigestOfDir(makeEtc(path.join(tmpDir('strata-etc-'), 'etc')));
    const changes: [string, (d: string) => void][] = [
      ['content', (d) => fs.writeFileSync(path.join(d, 'hostname'), 'other\n')],
      ['mode', (d) => fs.chmodSync(path.join(d, 'app/app.conf'), 0o600)],
      ['link', (d) => { fs.rmSync(path.join(d, 'localtime')); fs.symlinkSync('../usr/share/zoneinfo/CET', path.join(d, 'localtime')); }],
      ['dir', (d) => fs.mkdirSync(path.join(d, 'new.d'))],
      ['rename', (d) => fs.renameSync(path.join(d, 'app/app.conf'), path.join(d, 'app/app.conf2'))],
    ];
    if (process.getuid?.() === 0) changes.push(['owner', (d) => fs.chownSync(path.join(d, 'hostname'), 1000, 1000)]);
    const seen = new Set([base]);
    for (const [name, change] of changes) {
      const d = makeEtc(path.join(tmpDir('strata-etc-'), 'etc'));
      change(d);
      const digest = etcDigestOfDir(d);
      expect(seen.has(digest), name).toBe(false);
      seen.add(digest);
    }
  });

  it('the CLI prints it for a directory', () => {
    const d = makeEtc(path.join(tmpDir('strata-etc-'), 'etc'));
    const r = strata(['agent', 'etc-digest', d]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(etcDigestOfDir(d));
  });
});
