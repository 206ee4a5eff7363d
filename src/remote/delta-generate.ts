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
// - parts are compressed side by side, one xz (or 7zz) process per core,
//   cut where their estimated work is even.

import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { createHash } from 'node:crypto';
import { StrataError, ioError } from '../errors.js';
import { type Checksum, type DirTree, type FileMeta, type ObjectType, S_IFLNK, S_IFMT, S_IFREG, xattrsToGVariant } from '../core/objects.js';
import { type DeltaObject, type PartHeader, OP, PART_INDEX_KEY, serializePartIndex, serializePartPayload, serializeSuperblock, writeVarUint } from '../core/delta-format.js';
import { makePatch } from '../core/bsdiff.js';
import { staticDeltaDir } from '../core/deltas.js';
import { Repo } from '../repo/repo.js';
import { type XzTool, pickXzTool, runXzTool } from './xz-tool.js';
import { type ObjectKey, markTrees } from '../repo/reachable.js';

export interface GenerateDeltaOptions {
  repo: string | Repo;
  /** null: a delta from nothing (the whole commit). */
  from: Checksum | null;
  to: Checksum;
  /** xz preset 0-9 for the parts (default 6; 3 makes the delta ~9% larger in half the CPU time). */
  xzPreset?: number;
  /** The program that compresses the parts: 'auto' (default) takes 7zz when installed, else xz. */
  compressor?: XzTool | 'auto';
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
  /** The program that compressed the parts. */
  compressor: XzTool;
  /** Bytes of the superblock and parts. */
  size: number;
  /** Bytes of the objects the delta makes. */
  usize: number;
  seconds: number;
}

interface BuiltPart {
  header: PartHeader;
  size: number;
  /** The part's modes, xattrs and operations (serializePartIndex). */
  index: Buffer;
}

export interface PartBuilder {
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

/** One object's share of a part: its bytes (or patch) and the ops that make it. */
export interface Piece {
  object: DeltaObject;
  /** Bytes of the object it makes. */
  usize: number;
  /** Bytes it adds to the part's data. */
  dataBytes: number;
  /** Estimated xz work, in units of a byte of ordinary data. */
  cost: number;
  /** Bytes of whole x86 ELF files it adds. */
  x86: number;
  write: (p: PartBuilder) => void;
}

/**
 * An estimate of xz's work on some bytes: a share for every byte read and
 * one for every byte written out, which is about what zlib makes of them.
 * On the rootfs-a -> rootfs-b parts xz took ~0.21 s per MB read plus ~0.26 s
 * per MB written, so poorly compressible data costs nearly twice as much.
 */
function xzCost(bytes: number, compressed: number): number {
  return bytes + compressed;
}

/**
 * Cuts the pieces, in order, into as few parts as `maxPart` allows, with
 * about the same estimated xz work each, so that parts compressed side by
 * side finish together. A part never holds more than `maxPart` bytes of data
 * unless one piece alone is larger.
 */
export function planParts(pieces: Piece[], maxPart: number): Piece[][] {
  const bytes = pieces.reduce((n, p) => n + p.dataBytes, 0);
  const cost = pieces.reduce((n, p) => n + p.cost, 0);
  const count = Math.max(1, Math.ceil(bytes / maxPart));
  const parts: Piece[][] = [[]];
  let partBytes = 0;
  let spent = 0; // cost of the pieces in earlier parts and this one
  let placed = 0; // bytes of the pieces in earlier parts and this one
  for (const piece of pieces) {
    const current = parts[parts.length - 1];
    const share = (cost * parts.length) / count; // where this part's work should end
    const full = partBytes + piece.dataBytes > maxPart;
    // An even cut only while the rest still fits in the parts left.
    const even = spent + piece.cost / 2 > share && parts.length < count && bytes - placed <= (count - parts.length) * maxPart;
    if (current.length > 0 && (full || even)) {
      parts.push([]);
      partBytes = 0;
    }
    parts[parts.length - 1].push(piece);
    partBytes += piece.dataBytes;
    placed += piece.dataBytes;
    spent += piece.cost;
  }
  return parts;
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

/** A part's LZMA2 dictionary: as large as the part, from 1 to 64 MiB. */
const partDictionary = (payloadBytes: number): number => Math.min(64 * 1024 * 1024, Math.max(1024 * 1024, payloadBytes));

/** Whether the x86 branch filter pays: whole x86 binaries make up a tenth of the part or more. */
const wantsX86Filter = (payloadBytes: number, x86Bytes: number): boolean => x86Bytes > 0 && x86Bytes * 10 >= payloadBytes;

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
  const dict = partDictionary(payloadBytes);
  const filters = wantsX86Filter(payloadBytes, x86Bytes) ? ['--x86'] : [];
  const depth = preset >= 5 ? ',depth=16' : '';
  return ['-z', '-c', '-T1', ...filters, `--lzma2=preset=${preset},dict=${dict}${depth}`];
}

/**
 * 7-Zip's arguments for the same .xz stream xzArgs describes: LZMA2 with a
 * dictionary as large as the part (up to 64 MiB) and the x86 (BCJ) filter
 * under the same rule. 7-Zip's LZMA2 encoder finds matches in a thread of
 * its own, and a delta took about a sixth less CPU than with xz for the
 * same bytes; any xz decoder reads the result (decision 0013).
 */
export function sevenZipArgs(preset: number, payloadBytes: number, x86Bytes: number): string[] {
  const dict = partDictionary(payloadBytes);
  const filters = wantsX86Filter(payloadBytes, x86Bytes) ? ['-mf=BCJ'] : [];
  const effort = preset >= 5 ? ':fb=64:mc=16' : '';
  return ['a', '-txz', '-an', '-si', '-so', '-bso0', '-bsp0', '-mmt=1', `-mx=${preset}`, ...filters, `-m0=LZMA2:d=${dict}b${effort}`];
}

async function compressPart(tool: XzTool, input: Buffer, preset: number, x86Bytes: number): Promise<Buffer> {
  const args = tool === 'xz' ? xzArgs(preset, input.length, x86Bytes) : sevenZipArgs(preset, input.length, x86Bytes);
  const out: Buffer[] = [];
  await runXzTool(tool, args, input, {
    doing: 'compress a delta part',
    onData: (b) => out.push(b),
    failed: (message) => new StrataError('IO', `${tool} failed compressing a delta part: ${message}`, {}),
  }).done;
  return Buffer.concat(out);
}

export async function generateDelta(opts: GenerateDeltaOptions): Promise<GenerateDeltaResult> {
  const started = process.hrtime.bigint();
  const repo = typeof opts.repo === 'string' ? Repo.open(opts.repo) : opts.repo;
  const preset = opts.xzPreset ?? 6;
  if (!Number.isInteger(preset) || preset < 0 || preset > 9) throw new StrataError('USAGE', `xz preset ${preset} is not 0-9`, { preset });
  const maxPart = opts.maxPartBytes ?? 32 * 1024 * 1024;
  const tool = pickXzTool(opts.compressor ?? 'auto');
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

  // First every object's bytes (or patch), then the parts: cut where the
  // estimated xz work is even, so the parallel xz processes end together.
  const pieces: Piece[] = [];
  // An archive repository stores every file zlib-compressed: its size there
  // is a free measure of how well it compresses; otherwise guess a third.
  const storedSize = (checksum: Checksum, bytes: number): number => {
    if (!repo.archive) return bytes / 3;
    try {
      return fs.statSync(repo.objectFile(checksum, 'file')).size;
    } catch {
      return bytes / 3;
    }
  };
  let patched = 0;
  let done = 0;
  const total = metadata.length + content.length;
  for (const m of metadata) {
    const bytes = repo.readMetadataBytes(m.checksum, m.type as 'dirtree' | 'dirmeta');
    pieces.push({
      object: m, usize: bytes.length, dataBytes: bytes.length, cost: xzCost(bytes.length, bytes.length / 3), x86: 0,
      write: (p) => {
        const at = addData(p, bytes);
        p.ops.push(OP.openSpliceAndClose);
        writeVarUint(p.ops, bytes.length);
        writeVarUint(p.ops, at);
      },
    });
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
    const object: DeltaObject = { type: 'file', checksum };
    if (patch && source !== undefined) {
      patched++;
      const from = Buffer.from(source, 'hex');
      const diff = patch;
      pieces.push({
        object, usize: bytes.length, dataBytes: diff.length + from.length, cost: xzCost(diff.length, diff.length / 10), x86: 0, // mostly runs of zero differences
        write: (p) => {
          const [mi, xi] = modeAndXattrs(p, meta);
          p.ops.push(OP.setReadSource);
          writeVarUint(p.ops, addData(p, from));
          p.ops.push(OP.open);
          writeVarUint(p.ops, mi);
          writeVarUint(p.ops, xi);
          writeVarUint(p.ops, bytes.length);
          const at = addData(p, diff);
          p.ops.push(OP.bspatch);
          writeVarUint(p.ops, at);
          writeVarUint(p.ops, diff.length);
          p.ops.push(OP.close);
        },
      });
    } else {
      const x86 = isX86Elf(bytes);
      pieces.push({
        object, usize: bytes.length, dataBytes: bytes.length, cost: xzCost(bytes.length, storedSize(checksum, bytes.length)), x86: x86 ? bytes.length : 0,
        write: (p) => {
          const [mi, xi] = modeAndXattrs(p, meta);
          const at = addData(p, bytes);
          p.ops.push(OP.openSpliceAndClose);
          writeVarUint(p.ops, mi);
          writeVarUint(p.ops, xi);
          writeVarUint(p.ops, bytes.length);
          writeVarUint(p.ops, at);
        },
      });
    }
    opts.onProgress?.(++done, total);
  }

  const dir = path.join(repo.path, staticDeltaDir({ from, to }));
  const tmpDir = path.join(repo.path, 'tmp', `delta-strata-${process.pid}-${Date.now().toString(36)}`);
  fs.mkdirSync(tmpDir, { recursive: true });
  try {
    const plan = planParts(pieces, maxPart);
    const built: BuiltPart[] = new Array(plan.length);
    const compress = async (index: number): Promise<BuiltPart> => {
      const p = newPart();
      for (const piece of plan[index]) {
        piece.write(p);
        p.objects.push(piece.object);
        p.usize += piece.usize;
        p.x86Bytes += piece.x86;
      }
      const parts = { modes: p.modes, xattrs: p.xattrs, data: Buffer.concat(p.data), ops: Buffer.from(p.ops) };
      const payload = serializePartPayload(parts);
      const body = Buffer.concat([Buffer.from([0x78]), await compressPart(tool, payload, preset, p.x86Bytes)]); // 'x'
      fs.writeFileSync(path.join(tmpDir, String(index)), body, { mode: 0o644 });
      const checksum = createHash('sha256').update(body).digest('hex') as Checksum;
      return { header: { version: 0, checksum, size: body.length, usize: p.usize, objects: p.objects }, size: body.length, index: serializePartIndex(parts) };
    };
    // One xz process per core, each taking the next part when it is done;
    // after a failure the others take no new part.
    let next = 0;
    const runner = async (): Promise<void> => {
      while (next < plan.length) {
        const index = next++;
        try {
          built[index] = await compress(index);
        } catch (err) {
          next = plan.length;
          throw err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(plan.length, Math.max(1, os.availableParallelism())) }, runner));

    const deltaMeta: [string, { type: string; value: unknown }][] = [];
    // Each part's operations again, ahead of the parts: strata's client makes
    // objects while a part is still being decompressed.
    deltaMeta.push([PART_INDEX_KEY, { type: 'aay', value: built.map((b) => b.index) }]);
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
      compressor: tool,
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
