// OCI images as layers: an image layout directory (oci-layout, index.json,
// blobs/sha256/...) or a `docker save` archive (manifest.json with the
// config and layer tarballs, or a layout inside). Every blob read is checked
// against its sha256 digest and size before use; layers are applied in
// order with whiteouts (image-spec layer.md).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { StrataError, ioError } from '../errors.js';
import { TarReader, safeTarPath } from '../core/tar.js';
import { openTarball } from '../repo/source-tar.js';
import { applyTarball } from './apply.js';
import { hashFile } from './file-hash.js';
import type { StagingTree } from './tree.js';

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);
const MANIFEST_TYPES = new Set(['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json']);

interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
}

export interface OciResult {
  /** Digest of the image manifest used. */
  manifest: string;
  layers: string[];
}

function invalid(where: string, why: string, data: Record<string, unknown> = {}): StrataError {
  return new StrataError('OCI_INVALID', `${where}: ${why}`, { path: where, ...data });
}

function readJson(file: string, where: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw invalid(where, `${path.basename(file)} is missing`);
    throw ioError(err, 'read', file);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw invalid(where, `${path.basename(file)} is not valid JSON`);
  }
}

function asDescriptor(v: unknown, where: string, what: string): Descriptor {
  const d = v as Descriptor;
  if (!d || typeof d !== 'object' || typeof d.digest !== 'string' || typeof d.size !== 'number') throw invalid(where, `${what} is not a descriptor with a digest and a size`);
  return d;
}

/** The blob a descriptor names, once its size and sha256 match. */
async function verifiedBlob(layout: string, shown: string, d: Descriptor, what: string): Promise<string> {
  const m = /^sha256:([a-f0-9]{64})$/.exec(d.digest);
  if (!m) throw invalid(shown, `${what} has digest ${JSON.stringify(d.digest)}; strata reads sha256 digests only`);
  const file = path.join(layout, 'blobs', 'sha256', m[1]);
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw invalid(shown, `${what} blob ${d.digest} is missing from blobs/sha256`, { digest: d.digest });
  }
  if (st.size !== d.size) throw invalid(shown, `${what} blob ${d.digest} has ${st.size} bytes, its descriptor says ${d.size}`, { digest: d.digest });
  const actual = await hashFile(file);
  if (actual !== m[1]) throw invalid(shown, `${what} blob ${d.digest} does not match its digest (its sha256 is ${actual}): corrupt or tampered`, { digest: d.digest, actual });
  return file;
}

const ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

function pickManifest(list: Descriptor[], platform: string | undefined, where: string): Descriptor {
  if (list.length === 0) throw invalid(where, 'the index lists no manifests');
  if (list.length === 1 && platform === undefined) return list[0];
  const [osName, arch] = (platform ?? `linux/${ARCH[process.arch] ?? process.arch}`).split('/');
  const matching = list.filter((d) => !d.platform || (d.platform.os === osName && (arch === undefined || d.platform.architecture === arch)));
  if (matching.length === 1) return matching[0];
  const offered = list.map((d) => (d.platform ? `${d.platform.os}/${d.platform.architecture}` : d.digest.slice(0, 19))).join(', ');
  throw invalid(where, `${matching.length === 0 ? 'no manifest' : 'several manifests'} for platform ${osName}/${arch} (offered: ${offered}); set 'platform' on the layer`);
}

async function applyLayout(tree: StagingTree, layout: string, platform: string | undefined, shown = layout): Promise<OciResult> {
  const marker = readJson(path.join(layout, 'oci-layout'), shown) as { imageLayoutVersion?: string };
  if (typeof marker?.imageLayoutVersion !== 'string') throw invalid(shown, 'oci-layout has no imageLayoutVersion');
  let index = readJson(path.join(layout, 'index.json'), shown) as { manifests?: unknown[] };
  let descriptor: Descriptor;
  for (let depth = 0; ; depth++) {
    if (!Array.isArray(index?.manifests)) throw invalid(shown, 'the index has no manifests list');
    descriptor = pickManifest(index.manifests.map((m, i) => asDescriptor(m, shown, `manifests[${i}]`)), platform, shown);
    if (!descriptor.mediaType || !INDEX_TYPES.has(descriptor.mediaType)) break;
    if (depth > 4) throw invalid(shown, 'image indexes nest too deeply');
    index = readJson(await verifiedBlob(layout, shown, descriptor, 'image index'), shown) as { manifests?: unknown[] };
  }
  if (descriptor.mediaType && !MANIFEST_TYPES.has(descriptor.mediaType)) throw invalid(shown, `the chosen manifest has media type ${descriptor.mediaType}, not an image manifest`);
  const manifest = readJson(await verifiedBlob(layout, shown, descriptor, 'image manifest'), shown) as { config?: unknown; layers?: unknown[] };
  if (!Array.isArray(manifest?.layers)) throw invalid(shown, `manifest ${descriptor.digest} lists no layers`);
  await verifiedBlob(layout, shown, asDescriptor(manifest.config, shown, 'config'), 'image config');
  const layers = manifest.layers.map((l, i) => asDescriptor(l, shown, `layers[${i}]`));
  // Check every blob before the first is applied: a bad digest leaves the tree as it was.
  const files: string[] = [];
  for (const [i, l] of layers.entries()) files.push(await verifiedBlob(layout, shown, l, `layer ${i + 1}`));
  for (const f of files) await applyTarball(tree, f, { whiteouts: true });
  return { manifest: descriptor.digest, layers: layers.map((l) => l.digest) };
}

/** sha256 of a tarball's decompressed bytes: what a docker config's diff_ids name. */
async function hashDecompressed(file: string): Promise<string> {
  const input = openTarball(file);
  const h = createHash('sha256');
  try {
    for await (const chunk of input.chunks) h.update(chunk as Buffer);
    await input.finish();
  } finally {
    input.close();
  }
  return h.digest('hex');
}

/** `docker save` without an OCI layout inside: manifest.json, a config whose name is its digest, layers checked against diff_ids. */
async function applyDockerArchive(tree: StagingTree, dir: string, shown: string): Promise<OciResult> {
  const list = readJson(path.join(dir, 'manifest.json'), shown) as { Config?: string; Layers?: string[] }[];
  if (!Array.isArray(list) || list.length !== 1) throw invalid(shown, `manifest.json lists ${Array.isArray(list) ? list.length : 'no'} images; save exactly one`);
  const { Config, Layers } = list[0];
  if (typeof Config !== 'string' || !Array.isArray(Layers)) throw invalid(shown, 'manifest.json has no Config or Layers');
  const configFile = path.join(dir, ...safeTarPath(Config));
  const configDigest = await hashFile(configFile).catch(() => {
    throw invalid(shown, `config ${Config} is missing`);
  });
  const named = /([a-f0-9]{64})(\.json)?$/.exec(Config)?.[1];
  if (named && named !== configDigest) throw invalid(shown, `config ${Config} does not match its digest (its sha256 is ${configDigest}): corrupt or tampered`);
  const config = readJson(configFile, shown) as { rootfs?: { diff_ids?: string[] } };
  const diffIds = config?.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.length !== Layers.length) throw invalid(shown, 'the config\'s rootfs.diff_ids do not match the layer list');
  const files: string[] = [];
  for (const [i, l] of Layers.entries()) {
    const f = path.join(dir, ...safeTarPath(l));
    if (!fs.existsSync(f)) throw invalid(shown, `layer ${l} is missing`);
    const actual = `sha256:${await hashDecompressed(f)}`;
    if (actual !== diffIds[i]) throw invalid(shown, `layer ${i + 1} (${l}) does not match its diff_id ${diffIds[i]} (it is ${actual}): corrupt or tampered`, { digest: diffIds[i], actual });
    files.push(f);
  }
  for (const f of files) await applyTarball(tree, f, { whiteouts: true });
  return { manifest: `sha256:${configDigest}`, layers: diffIds };
}

/** Unpacks a docker-save archive's plain files into dir (no links, no devices, safe paths). */
async function extractArchive(file: string, dir: string): Promise<void> {
  const input = openTarball(file);
  const reader = new TarReader();
  let fd: number | null = null;
  try {
    for await (const chunk of input.chunks) {
      for (const ev of reader.push(chunk as Buffer)) {
        if (ev.kind === 'entry') {
          const parts = safeTarPath(ev.entry.path);
          if (parts.length === 0) continue;
          const p = path.join(dir, ...parts);
          if (ev.entry.type === 'directory') fs.mkdirSync(p, { recursive: true });
          else if (ev.entry.type === 'file') {
            fs.mkdirSync(path.dirname(p), { recursive: true });
            fd = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
          }
          // docker save links identical layers with symlinks; resolved below by copying their target.
          else if (ev.entry.type === 'symlink') {
            const target = path.join(path.dirname(p), ev.entry.linkpath);
            if (path.relative(dir, target).startsWith('..')) throw new StrataError('UNSAFE_PATH', `${file}: symlink ${ev.entry.path} leaves the archive`, { path: ev.entry.path });
            fs.mkdirSync(path.dirname(p), { recursive: true });
            fs.symlinkSync(path.relative(path.dirname(p), target), p);
          }
        } else if (ev.kind === 'data' && fd !== null) {
          for (let off = 0; off < ev.bytes.length; ) off += fs.writeSync(fd, ev.bytes, off);
        } else if (ev.kind === 'entry-end' && fd !== null) {
          fs.closeSync(fd);
          fd = null;
        }
      }
    }
    await input.finish();
    reader.end();
  } finally {
    input.close();
    if (fd !== null) fs.closeSync(fd);
  }
}

export async function applyOci(tree: StagingTree, source: string, platform: string | undefined, work: string): Promise<OciResult> {
  let st: fs.Stats;
  try {
    st = fs.statSync(source);
  } catch {
    throw new StrataError('SOURCE_NOT_FOUND', `${source} does not exist`, { path: source });
  }
  if (st.isDirectory()) {
    if (fs.existsSync(path.join(source, 'index.json'))) return applyLayout(tree, source, platform);
    if (fs.existsSync(path.join(source, 'manifest.json'))) return applyDockerArchive(tree, source, source);
    throw invalid(source, 'neither an OCI image layout (index.json) nor an unpacked docker save (manifest.json)');
  }
  const dir = fs.mkdtempSync(path.join(work || os.tmpdir(), 'oci-'));
  try {
    await extractArchive(source, dir);
    if (fs.existsSync(path.join(dir, 'index.json')) && fs.existsSync(path.join(dir, 'oci-layout'))) return await applyLayout(tree, dir, platform, source);
    if (fs.existsSync(path.join(dir, 'manifest.json'))) return await applyDockerArchive(tree, dir, source);
    throw invalid(source, 'the archive holds neither an OCI image layout (index.json) nor a docker save manifest.json');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
