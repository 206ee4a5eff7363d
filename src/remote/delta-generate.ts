// Writes a static delta in OSTree's format (src/core/delta-format.ts) into
// the repository's deltas/ directory, where `strata summary -u` lists it and
// both `strata pull` and `ostree pull` (into bare repositories) use it.
//
// What makes it smaller and faster than libostree's generator:
// - objects are ordered by file type and name, so similar files sit next to
//   each other in the xz window (libostree uses hash order);
// - a file whose path (or version-free path) existed in FROM becomes a
//   bsdiff-4 patch against the old file, computed by our linear matcher
//   (src/core/bsdiff.ts) instead of a suffix sort;
// - no file is left out as a "fallback": large files compress better with
//   xz than as separate gzip objects;
// - parts are compressed by xz processes running in parallel.

import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { StrataError, ioError } from '../errors.js';
import { type Checksum, type DirTree, type FileMeta, type ObjectType, S_IFLNK, S_IFMT, S_IFREG, xattrsToGVariant } from '../core/objects.js';
import { type DeltaObject, type PartHeader, OP, serializePartPayload, serializeSuperblock, writeVarUint } from '../core/delta-format.js';
import { makePatch } from '../core/bsdiff.js';
import { staticDeltaDir } from '../core/deltas.js';
import { Repo } from '../repo/repo.js';
import { type ObjectKey, markTrees } from '../repo/reachable.js';

export interface GenerateDeltaOptions {
  repo: string | Repo;
  /** null: a delta from nothing (the whole commit). */
  from: Checksum | null;
  to: Checksum;
  /** xz preset 0-9 for the parts (default 6; 3 makes the delta ~9% larger in half the CPU time). */
  xzPreset?: number;
  /** Uncompressed bytes per part (default 32 MiB, libostree's default). */
  maxPartBytes?: number;
  /** Make binary patches for changed files (default true). */
  bsdiff?: boolean;
  /** Seconds since the epoch recorded in the superblock (default now). */
  timestamp?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface GenerateDeltaResult {
  name: string;
  path: string;
  from: Checksum | null;
  to: Checksum;
  parts: number;
  objects: number;
  /** Files sent as binary patches against their old version. */
  patched: number;
  /** Bytes of the superblock and parts. */
  size: number;
  /** Bytes of the objects the delta makes. */
  usize: number;
  seconds: number;
}

interface PartBuilder {
  objects: DeltaObject[];
  modes: [number, number, number][];
  modeIndex: Map<string, number>;
  xattrs: [Buffer, Buffer][][];
  xattrIndex: Map<string, number>;
  data: Buffer[];
  dataLength: number;
  ops: number[];
  usize: number;
  /** Bytes of whole x86 ELF files in the part: xz's x86 filter pays when they are a good share. */
  x86Bytes: number;
}

function newPart(): PartBuilder {
  return { objects: [], modes: [], modeIndex: new Map(), xattrs: [], xattrIndex: new Map(), data: [], dataLength: 0, ops: [], usize: 0, x86Bytes: 0 };
}

function addData(p: PartBuilder, bytes: Buffer): number {
  const at = p.dataLength;
  p.data.push(bytes);
  p.dataLength += bytes.length;
  return at;
}

function modeAndXattrs(p: PartBuilder, meta: FileMeta): [number, number] {
  const mkey = `${meta.uid}:${meta.gid}:${meta.mode}`;
  let m = p.modeIndex.get(mkey);
  if (m === undefined) {
    m = p.modes.length;
    p.modes.push([meta.uid, meta.gid, meta.mode]);
    p.modeIndex.set(mkey, m);
  }
  const xs = xattrsToGVariant(meta.xattrs);
  const xkey = xs.map(([n, v]) => `${n.toString('hex')}=${v.toString('hex')}`).join(',');
  let x = p.xattrIndex.get(xkey);
  if (x === undefined) {
    x = p.xattrs.length;
    p.xattrs.push(xs);
    p.xattrIndex.set(xkey, x);
  }
  return [m, x];
}

/** Paths of a commit's content objects: checksum -> first path, and path -> regular-file checksum. */
function treePaths(repo: Repo, commit: Checksum): { pathOf: Map<Checksum, string>; fileAt: Map<string, Checksum> } {
  const pathOf = new Map<Checksum, string>();
  const fileAt = new Map<string, Checksum>();
  const walk = (tree: DirTree, prefix: string): void => {
    for (const f of tree.files) {
      const p = prefix + f.name;
      if (!pathOf.has(f.checksum)) pathOf.set(f.checksum, p);
      fileAt.set(p, f.checksum);
    }
    for (const d of tree.dirs) walk(repo.loadDirTree(d.tree), `${prefix}${d.name}/`);
  };
  walk(repo.loadDirTree(repo.loadCommit(commit).rootTree), '/');
  return { pathOf, fileAt };
}

/** A path with its version numbers taken out, to pair libfoo.so.1.2 with libfoo.so.1.3. */
const shapeOf = (p: string): string => p.replace(/[0-9]+/g, '#');

/** Sort key putting similar files together: extension, then name, then directory. */
function sortKey(p: string): string {
  const base = p.slice(p.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  return `${dot > 0 ? base.slice(dot + 1) : ''}\0${base}\0${p}`;
}

/** An ELF file for i386 or x86-64 (e_machine 3 or 62). */
function isX86Elf(b: Buffer): boolean {
  return b.length > 20 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46 && (b.readUInt16LE(18) === 62 || b.readUInt16LE(18) === 3);
}

/**
 * xz arguments for a part: the preset's match finder with a dictionary as
 * large as the part (up to 64 MiB; the presets below 8 stop at 8 MiB), and
 * the x86 branch filter when whole x86 binaries make up a tenth of it or
 * more (it turns relative call targets into absolute ones, which repeat).
 * Both are recorded in the .xz stream header: any xz decoder, libostree's
 * liblzma included, reads them without options. The presets from 5 up search
 * the binary-tree match finder 16 levels deep instead of their automatic
 * 32-48: on the rootfs-a -> rootfs-b parts that took 14% less CPU for 0.3%
 * more bytes in one measurement (decision 0008).
 */
export function xzArgs(preset: number, payloadBytes: number, x86Bytes: number): string[] {
  const dict = Math.min(64 * 1024 * 1024, Math.max(1024 * 1024, payloadBytes));
  const filters = x86Bytes * 10 >= payloadBytes && x86Bytes > 0 ? ['--x86'] : [];
  const depth = preset >= 5 ? ',depth=16' : '';
  return ['-z', '-c', '-T1', ...filters, `--lzma2=preset=${preset},dict=${dict}${depth}`];
}

async function xzCompress(input: Buffer, args: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('xz', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') reject(new StrataError('TOOL_MISSING', "cannot compress a delta part: the 'xz' command is missing; install the Debian package xz-utils", { command: 'xz', package: 'xz-utils' }));
      else reject(ioError(err, 'run', 'xz'));
    });
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new StrataError('IO', `xz failed compressing a delta part: ${stderr.trim() || `exit code ${code}`}`, {}));
    });
    child.stdin.on('error', () => undefined); // reported by 'close'
    child.stdin.end(input);
  });
}

export async function generateDelta(opts: GenerateDeltaOptions): Promise<GenerateDeltaResult> {
  const started = process.hrtime.bigint();
  const repo = typeof opts.repo === 'string' ? Repo.open(opts.repo) : opts.repo;
  const preset = opts.xzPreset ?? 6;
  if (!Number.isInteger(preset) || preset < 0 || preset > 9) throw new StrataError('USAGE', `xz preset ${preset} is not 0-9`, { preset });
  const maxPart = opts.maxPartBytes ?? 32 * 1024 * 1024;
  const useBsdiff = opts.bsdiff ?? true;
  const { from, to } = opts;
  if (from === to) throw new StrataError('USAGE', 'a delta from a commit to itself is empty; give two different commits', { from, to });

  const commitBytes = repo.readMetadataBytes(to, 'commit');
  const wanted = new Set<ObjectKey>();
  markTrees(repo, [to], wanted, (key) => {
    throw new StrataError('OBJECT_MISSING', `cannot make a delta to ${to}: object ${key} is missing; the repository must hold the whole commit`, { object: key });
  });
  const have = new Set<ObjectKey>();
  let old: ReturnType<typeof treePaths> | null = null;
  if (from) {
    repo.readMetadataBytes(from, 'commit');
    markTrees(repo, [from], have, (key) => {
      throw new StrataError('OBJECT_MISSING', `cannot make a delta from ${from}: object ${key} is missing`, { object: key });
    });
    if (useBsdiff) old = treePaths(repo, from);
  }
  const metadata: DeltaObject[] = [];
  const content: Checksum[] = [];
  for (const key of wanted) {
    if (have.has(key)) continue;
    const dot = key.indexOf('.');
    const checksum = key.slice(0, dot) as Checksum;
    const type = key.slice(dot + 1) as ObjectType;
    if (type === 'commit' || type === 'commitmeta') continue; // the superblock carries them
    if (type === 'file') content.push(checksum);
    else metadata.push({ type, checksum });
  }
  const { pathOf } = treePaths(repo, to);
  const oldByShape = new Map<string, Checksum>();
  if (old) for (const [p, c] of old.fileAt) oldByShape.set(shapeOf(p), c);
  content.sort((a, b) => {
    const ka = sortKey(pathOf.get(a) ?? '');
    const kb = sortKey(pathOf.get(b) ?? '');
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });

  const dir = path.join(repo.path, staticDeltaDir({ from, to }));
  const tmpDir = path.join(repo.path, 'tmp', `delta-strata-${process.pid}-${Date.now().toString(36)}`);
  fs.mkdirSync(tmpDir, { recursive: true });
  try {
    const parts: Promise<{ header: PartHeader; size: number }>[] = [];
    const slots: Promise<unknown>[] = [];
    const concurrency = Math.max(1, os.availableParallelism());
    let part = newPart();
    let patched = 0;
    let done = 0;
    const total = metadata.length + content.length;
    const finish = async (p: PartBuilder): Promise<void> => {
      const index = parts.length;
      // Keep at most `concurrency` xz processes; building continues meanwhile.
      while (slots.length >= concurrency) await Promise.race(slots);
      const payload = serializePartPayload({ modes: p.modes, xattrs: p.xattrs, data: Buffer.concat(p.data), ops: Buffer.from(p.ops) });
      const job = (async () => {
        const body = Buffer.concat([Buffer.from([0x78]), await xzCompress(payload, xzArgs(preset, payload.length, p.x86Bytes))]); // 'x'
        fs.writeFileSync(path.join(tmpDir, String(index)), body, { mode: 0o644 });
        const checksum = createHash('sha256').update(body).digest('hex') as Checksum;
        return { header: { version: 0, checksum, size: body.length, usize: p.usize, objects: p.objects }, size: body.length };
      })();
      parts.push(job);
      const slot: Promise<unknown> = job.then(
        () => slots.splice(slots.indexOf(slot), 1),
        () => slots.splice(slots.indexOf(slot), 1),
      );
      slots.push(slot);
    };
    const room = async (bytes: number): Promise<void> => {
      if (part.objects.length > 0 && part.dataLength + bytes > maxPart) {
        await finish(part);
        part = newPart();
      }
    };

    for (const m of metadata) {
      const bytes = repo.readMetadataBytes(m.checksum, m.type as 'dirtree' | 'dirmeta');
      await room(bytes.length);
      const at = addData(part, bytes);
      part.objects.push(m);
      part.usize += bytes.length;
      part.ops.push(OP.openSpliceAndClose);
      writeVarUint(part.ops, bytes.length);
      writeVarUint(part.ops, at);
      opts.onProgress?.(++done, total);
    }
    for (const checksum of content) {
      const { meta, content: body } = repo.loadFile(checksum);
      const isLink = (meta.mode & S_IFMT) === S_IFLNK;
      const bytes = isLink ? Buffer.from(meta.symlinkTarget, 'utf8') : (body as Buffer);
      // A changed file: a patch against the old file at the same (or version-free) path.
      let patch: Buffer | null = null;
      let source: Checksum | undefined;
      if (old && !isLink && bytes.length >= 64) {
        const p = pathOf.get(checksum) ?? '';
        source = old.fileAt.get(p) ?? oldByShape.get(shapeOf(p));
        if (source !== undefined && source !== checksum) {
          const prev = repo.loadFile(source);
          if ((prev.meta.mode & S_IFMT) === S_IFREG && prev.content && prev.content.length >= 64) {
            const r = makePatch(prev.content, bytes);
            if (r.matched >= bytes.length / 2 && r.patch.length < bytes.length * 1.5) patch = r.patch;
          }
        }
      }
      await room(patch ? patch.length + 32 : bytes.length);
      const [mi, xi] = modeAndXattrs(part, meta);
      part.objects.push({ type: 'file', checksum });
      part.usize += bytes.length;
      if (patch && source !== undefined) {
        patched++;
        part.ops.push(OP.setReadSource);
        writeVarUint(part.ops, addData(part, Buffer.from(source, 'hex')));
        part.ops.push(OP.open);
        writeVarUint(part.ops, mi);
        writeVarUint(part.ops, xi);
        writeVarUint(part.ops, bytes.length);
        const at = addData(part, patch);
        part.ops.push(OP.bspatch);
        writeVarUint(part.ops, at);
        writeVarUint(part.ops, patch.length);
        part.ops.push(OP.close);
      } else {
        const at = addData(part, bytes);
        if (isX86Elf(bytes)) part.x86Bytes += bytes.length;
        part.ops.push(OP.openSpliceAndClose);
        writeVarUint(part.ops, mi);
        writeVarUint(part.ops, xi);
        writeVarUint(part.ops, bytes.length);
        writeVarUint(part.ops, at);
      }
      opts.onProgress?.(++done, total);
    }
    if (part.objects.length > 0 || parts.length === 0) await finish(part);
    const built = await Promise.all(parts);

    const deltaMeta: [string, { type: string; value: unknown }][] = [];
    const detached = repo.loadCommitMeta(to);
    if (detached) deltaMeta.push([`${staticDeltaDir({ from, to })}/commitmeta`, { type: 'a{sv}', value: detached }]);
    const superblock = serializeSuperblock({
      metadata: deltaMeta as never,
      timestamp: opts.timestamp ?? Math.floor(Date.now() / 1000),
      from,
      to,
      commit: commitBytes,
      parts: built.map((b) => b.header),
      fallbacks: [],
    });
    fs.writeFileSync(path.join(tmpDir, 'superblock'), superblock, { mode: 0o644 });
    // Publish whole: a reader sees the old delta or the new one, never a mix.
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmpDir, dir);
    const size = superblock.length + built.reduce((n, b) => n + b.size, 0);
    return {
      name: from ? `${from}-${to}` : to,
      path: dir,
      from,
      to,
      parts: built.length,
      objects: total,
      patched,
      size,
      usize: built.reduce((n, b) => n + b.header.usize, 0),
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
    };
  } catch (err) {
    fs.rmSync(tmpDir, { recursive: true, force: true });
    throw err instanceof StrataError ? err : ioError(err, 'write delta in', repo.path);
  }
}
