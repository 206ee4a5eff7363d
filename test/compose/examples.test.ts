// The manifests in examples/ stay valid, and the ones that need no network
// or debootstrap are composed for real: the OCI one from a layout built
// here, the edge gateway on a stand-in server (rootfs-a) with its packages
// fetched by apt-get download when this machine's apt can.

import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { compose } from '../../src/compose/compose.js';
import { loadManifest } from '../../src/compose/manifest.js';
import { ROOT, isRoot, rootfsPair, tmpDir } from '../helpers/fixtures.js';
import { buildOciLayout, cat, entries, head, manifest, newRepo, write } from './helpers.js';

process.env.STRATA_WORKERS ??= '1';
const EXAMPLES = path.join(ROOT, 'examples');

describe('examples/', () => {
  it('every manifest is valid and names inputs that exist', () => {
    const names = fs.readdirSync(EXAMPLES).filter((n) => n.endsWith('.yaml')).sort();
    expect(names).toEqual(['debian-server.yaml', 'edge-gateway.yaml', 'oci-app.yaml']);
    for (const n of names) {
      const m = loadManifest(path.join(EXAMPLES, n), {});
      expect(m.timestampSource).toBe('manifest');
      for (const f of m.files) if (f.source) expect(fs.existsSync(f.source), f.source).toBe(true);
      for (const l of m.layers) if (l.kind === 'dir') expect(fs.existsSync(l.path), l.path).toBe(true);
    }
    const server = loadManifest(path.join(EXAMPLES, 'debian-server.yaml'), {});
    expect(server.base).toMatchObject({ kind: 'debootstrap', suite: 'bookworm' });
    expect(server.units.enable).toContain('ssh.service');
    expect(loadManifest(path.join(EXAMPLES, 'edge-gateway.yaml'), {}).base).toEqual({ kind: 'ref', rev: server.ref });
  });

  it('oci-app.yaml composes from an OCI layout', async () => {
    const dir = tmpDir();
    fs.cpSync(path.join(EXAMPLES, 'oci-app.yaml'), path.join(dir, 'oci-app.yaml'));
    fs.cpSync(path.join(EXAMPLES, 'oci-app'), path.join(dir, 'oci-app'), { recursive: true });
    write(dir, 'img/etc/os-release', 'ID=debian\n');
    write(dir, 'img/usr/bin/sh', '#!fake\n', 0o755);
    write(dir, 'img/usr/share/doc/base/copyright', 'c\n');
    const { layout } = buildOciLayout(dir, [path.join(dir, 'img')]);
    fs.renameSync(layout, path.join(dir, 'debian-slim'));
    const repo = newRepo();
    const r = await compose({ manifest: path.join(dir, 'oci-app.yaml'), repo });
    expect(r.ref).toBe('apps/x86_64/oci-app');
    const e = entries(repo, r.ref);
    expect(cat(repo, r.ref, '/usr/etc/app/app.conf')).toBe('listen=0.0.0.0:8080\n');
    expect(e.get('/usr/local/bin/app')?.mode).toBe(0o755);
    expect(e.get('/usr/etc/systemd/system/multi-user.target.wants/app.service')?.target).toBe('/usr/lib/systemd/system/app.service');
    expect(e.has('/usr/share/doc/base')).toBe(false);
  });

  const aptWorks = isRoot && spawnSync('apt-cache', ['show', 'wireguard-tools', 'libnftables1'], { encoding: 'utf8' }).status === 0;
  describe.runIf(aptWorks)('edge-gateway.yaml (packages from apt-get download)', () => {
    it('composes on a stand-in server image and records the packages', async () => {
      const pair = rootfsPair();
      if (!pair) throw new Error('rootfs-a could not be built');
      const dir = tmpDir();
      fs.cpSync(path.join(EXAMPLES, 'edge-gateway.yaml'), path.join(dir, 'edge-gateway.yaml'));
      fs.cpSync(path.join(EXAMPLES, 'edge-gateway'), path.join(dir, 'edge-gateway'), { recursive: true });
      const repo = newRepo();
      const server = manifest(dir, `ref: debian/bookworm/x86_64/server\ntimestamp: 2024-06-01T00:00:00Z\nbase: { dir: ${pair.a} }\n`, 'server.yaml');
      await compose({ manifest: server, repo });
      const r = await compose({ manifest: path.join(dir, 'edge-gateway.yaml'), repo });
      expect(r.base?.commit).toBe(head(repo, 'debian/bookworm/x86_64/server'));
      expect(r.layers[0].packages?.map((p) => p.package)).toEqual(['wireguard-tools', 'nftables', 'libnftables1', 'libnftnl11', 'libjansson4', 'libxtables12']);
      const e = entries(repo, r.ref);
      expect(e.get('/usr/bin/wg')?.type).toBe('file');
      expect(e.get('/usr/etc/systemd/system/sysinit.target.wants/nftables.service')?.target).toMatch(/\/systemd\/system\/nftables\.service$/);
      expect(cat(repo, r.ref, '/usr/etc/passwd')).toContain('\nedge-agent:x:990:1600:Edge agent:/var/lib/edge-agent:/usr/sbin/nologin\n');
      const status = cat(repo, r.ref, '/usr/share/factory/var/lib/dpkg/status') ?? '';
      expect(status).toMatch(/^Package: wireguard-tools\nStatus: install ok unpacked$/m);
      // The base's own packages stay as they were.
      expect(status).toMatch(/^Package: dpkg\nEssential: yes\nStatus: install ok installed$/m);
    }, 300_000);
  });
});
