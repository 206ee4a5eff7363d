// Fixtures for compose tests: repositories, reading composed trees back,
// a whole-repository snapshot (to prove a failed compose wrote nothing),
// and inputs built for real: tarballs with tar, .debs with dpkg-deb, OCI
// image layouts by hand (tar layers, sha256 blobs, index.json).

import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { Repo } from '../../src/repo/repo.js';
import { readRef } from '../../src/repo/refs.js';
import { listTree, resolveTreePath } from '../../src/repo/walk.js';
import type { Checksum } from '../../src/core/objects.js';
import { sh, tmpDir } from '../helpers/fixtures.js';

export function newRepo(mode: 'bare-user' | 'archive' = 'bare-user'): string {
  const r = path.join(tmpDir('strata-compose-repo-'), 'repo');
  Repo.init(r, mode);
  return r;
}

export function write(root: string, p: string, content: string | Buffer, mode = 0o644): string {
  const f = path.join(root, p);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, content);
  fs.chmodSync(f, mode);
  return f;
}

export function head(repo: string, ref: string): Checksum {
  const c = readRef(Repo.open(repo), ref);
  if (!c) throw new Error(`no ref ${ref}`);
  return c;
}

/** A file's content in the ref's commit, or null when the path is absent. */
export function cat(repo: string, ref: string, p: string): string | null {
  const r = Repo.open(repo);
  try {
    const node = resolveTreePath(r, head(repo, ref), p);
    if (node.kind !== 'file') return null;
    return r.loadFile(node.checksum).content?.toString('utf8') ?? null;
  } catch (err) {
    if ((err as { code?: string }).code === 'PATH_NOT_FOUND') return null;
    throw err;
  }
}

/** Every entry of the ref's commit as `path type mode uid:gid [-> target]`. */
export function entries(repo: string, ref: string): Map<string, { type: string; mode: number; uid: number; gid: number; target?: string }> {
  const r = Repo.open(repo);
  const out = new Map<string, { type: string; mode: number; uid: number; gid: number; target?: string }>();
  for (const e of listTree(r, head(repo, ref), '/', true)) out.set(e.path, { type: e.type, mode: e.mode & 0o7777, uid: e.uid, gid: e.gid, target: e.target });
  return out;
}

/** Every file of a repository with its size and content hash: equal snapshots mean nothing was written. */
export function snapshot(repo: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const n of fs.readdirSync(d).sort()) {
      const p = path.join(d, n);
      const st = fs.lstatSync(p);
      const rel = path.relative(repo, p);
      if (st.isDirectory()) {
        out.push(`${rel}/`);
        walk(p);
      } else out.push(`${rel} ${createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`);
    }
  };
  walk(repo);
  return out;
}

export function manifest(dir: string, text: string, name = 'manifest.yaml'): string {
  return write(dir, name, text);
}

/** A tarball of dir's contents (entries ./...), owned by root; compression by flag. */
export function tarball(dir: string, out: string, compress: '' | 'z' | 'J' | 'zstd' = ''): string {
  const flags = compress === 'zstd' ? ['--zstd'] : compress ? [`-${compress}`] : [];
  sh('tar', ['-c', ...flags, '-f', out, '--owner=0', '--group=0', '--sort=name', '--format=pax', '-C', dir, '.']);
  return out;
}

/** A real .deb made by dpkg-deb from a directory of files and a control stanza. */
export function buildDeb(work: string, pkg: string, version: string, files: Record<string, string>, extraControl = ''): string {
  const root = path.join(work, `${pkg}-src`);
  fs.rmSync(root, { recursive: true, force: true });
  for (const [p, content] of Object.entries(files)) write(root, p, content, /(^|\/)s?bin\//.test(p) ? 0o755 : 0o644);
  write(root, 'DEBIAN/control', `Package: ${pkg}\nVersion: ${version}\nArchitecture: all\nMaintainer: Test <t@example.com>\nDescription: test package ${pkg}\n a longer description line\n${extraControl}`);
  const out = path.join(work, `${pkg}_${version}_all.deb`);
  sh('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', root, out]);
  return out;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** An OCI image layout with one image whose layers are the given directories (tar+gzip), in order. */
export function buildOciLayout(work: string, layerDirs: string[]): { layout: string; layerDigests: string[] } {
  const layout = path.join(work, 'oci-layout-dir');
  fs.rmSync(layout, { recursive: true, force: true });
  const blobs = path.join(layout, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const put = (data: Buffer): { digest: string; size: number } => {
    const h = sha256(data);
    fs.writeFileSync(path.join(blobs, h), data);
    return { digest: `sha256:${h}`, size: data.length };
  };
  const layers: { mediaType: string; digest: string; size: number }[] = [];
  const diffIds: string[] = [];
  for (const [i, d] of layerDirs.entries()) {
    const tgz = tarball(d, path.join(work, `layer-${i}.tar.gz`), 'z');
    const raw = sh('sh', ['-c', `gzip -dc '${tgz}' | sha256sum`]).split(' ')[0];
    diffIds.push(`sha256:${raw}`);
    layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...put(fs.readFileSync(tgz)) });
  }
  const config = put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds }, config: {} })));
  const manifestBlob = put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers })));
  fs.writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(path.join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifestBlob }] }));
  return { layout, layerDigests: layers.map((l) => l.digest) };
}
