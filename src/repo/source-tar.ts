// Reads a tarball (plain, gzip, xz or zstd) into an MDir, handing every file
// to the object writer as soon as its bytes are read. The parsing is in
// core/tar.ts; here are decompression, path safety, the tree and memory bounds.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { spawn } from 'node:child_process';
import { pipeline } from 'node:stream';
import { StrataError, ioError } from '../errors.js';
import { type Checksum, type DirMeta, type FileMeta, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../core/objects.js';
import { BLOCK, type TarEntry, type TarEvent, TarReader, isValidHeader, safeTarPath } from '../core/tar.js';
import { type MDir, type MFile, type MNode, type SourceOptions, type SourceStats, type StageFn, applyOwner } from './mtree.js';

type Compression = 'gzip' | 'xz' | 'zstd' | 'none';

/** Entries larger than this go to a temp file instead of memory (the worker streams them). */
const SPILL_THRESHOLD = 16 * 1024 * 1024;
/** At most this many bytes of entry data wait in memory for the workers. */
const MAX_BYTES_IN_FLIGHT = 64 * 1024 * 1024;
/** At most this many spilled entries wait at once, which bounds the temp space. */
const MAX_SPILLS_IN_FLIGHT = 4;

const DECOMPRESSORS = {
  xz: { command: 'xz', debianPackage: 'xz-utils' },
  zstd: { command: 'zstd', debianPackage: 'zstd' },
} as const;

function sniff(head: Buffer): Compression | null {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.length >= 4 && head.readUInt32BE(0) === 0x28b52ffd) return 'zstd';
  if (head.length >= BLOCK && isValidHeader(head.subarray(0, BLOCK))) return 'none';
  // An archive with no entries is just its end-of-archive marker: two zero blocks.
  if (head.length >= 2 * BLOCK && head.subarray(0, 2 * BLOCK).every((b) => b === 0)) return 'none';
  return null;
}

function readHead(p: string): Buffer | null {
  let fd: number;
  try {
    if (!fs.statSync(p).isFile()) return null;
    fd = fs.openSync(p, 'r');
  } catch {
    return null;
  }
  try {
    const head = Buffer.alloc(2 * BLOCK);
    const n = fs.readSync(fd, head, 0, head.length, 0);
    return head.subarray(0, n);
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

/** Decides by content, never by name: compressed magic, or a valid tar header. A directory is never a tarball. */
export function looksLikeTarball(p: string): boolean {
  const head = readHead(p);
  return head !== null && sniff(head) !== null;
}

export interface TarInput {
  chunks: AsyncIterable<Buffer>;
  /** Resolves when the producer finished cleanly; throws its failure otherwise. */
  finish(): Promise<void>;
  close(): void;
}

function decompressError(p: string, why: string): StrataError {
  return new StrataError('TAR_MALFORMED', `cannot decompress ${p}: ${why}`, { path: p });
}

function openInput(p: string, compression: Compression): TarInput {
  if (compression === 'none' || compression === 'gzip') {
    const file = fs.createReadStream(p, { highWaterMark: 1 << 20 });
    if (compression === 'none') return { chunks: file, finish: async () => undefined, close: () => file.destroy() };
    const gunzip = zlib.createGunzip({ chunkSize: 1 << 20 });
    pipeline(file, gunzip, () => undefined); // errors surface through the gunzip iterator
    return { chunks: gunzip, finish: async () => undefined, close: () => gunzip.destroy() };
  }
  const tool = DECOMPRESSORS[compression];
  const child = spawn(tool.command, ['-dc', '--', p], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    if (stderr.length < 4096) stderr += s;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; err?: NodeJS.ErrnoException }>((resolve) => {
    child.on('error', (err: NodeJS.ErrnoException) => resolve({ code: null, signal: null, err }));
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  return {
    chunks: child.stdout,
    finish: async () => {
      const r = await exited;
      if (r.err?.code === 'ENOENT') {
        throw new StrataError('TOOL_MISSING', `cannot decompress ${p}: the '${tool.command}' command is missing; install the Debian package ${tool.debianPackage}`, { path: p, command: tool.command, package: tool.debianPackage });
      }
      if (r.err) throw ioError(r.err, `run ${tool.command} on`, p);
      if (r.code !== 0) {
        const line = stderr.trim().split('\n').pop()?.replace(/^[^:]*: /, '') || `exit code ${r.code ?? r.signal}`;
        throw decompressError(p, `${tool.command} says ${line}`);
      }
    },
    close: () => {
      child.stdout.destroy();
      if (child.exitCode === null && child.signalCode === null) child.kill();
    },
  };
}

/** The tree being built, with the stats kept true when a later entry replaces an earlier one. */
class TreeBuilder {
  readonly root: MDir;

  constructor(private readonly opts: SourceOptions, private readonly stats: SourceStats) {
    this.root = { kind: 'dir', meta: this.implicitDirMeta(), entries: new Map() };
    stats.dirs++;
  }

  /** Directories the archive does not list, and the root when it has no '.' entry. */
  implicitDirMeta(): DirMeta {
    return applyOwner({ uid: 0, gid: 0, mode: S_IFDIR | 0o755, xattrs: [] }, this.opts);
  }

  /** The node at parts, or undefined; never creates anything. */
  lookup(parts: string[]): MNode | undefined {
    let node: MNode = this.root;
    for (const name of parts) {
      if (node.kind !== 'dir') return undefined;
      const next: MNode | undefined = node.entries.get(name);
      if (!next) return undefined;
      node = next;
    }
    return node;
  }

  /** The directory that holds parts' last component, creating missing ones. */
  private parentOf(parts: string[], entry: TarEntry): MDir {
    let dir = this.root;
    for (let i = 0; i < parts.length - 1; i++) {
      const name = parts[i];
      const next = dir.entries.get(name);
      if (next === undefined) {
        const created: MDir = { kind: 'dir', meta: this.implicitDirMeta(), entries: new Map() };
        dir.entries.set(name, created);
        this.stats.dirs++;
        dir = created;
      } else if (next.kind === 'dir') {
        dir = next;
      } else {
        const where = parts.slice(0, i + 1).join('/');
        if ((next.meta.mode & S_IFMT) === S_IFLNK) {
          // The classic extraction attack: a symlink, then a path through it.
          throw new StrataError('UNSAFE_PATH', `unsafe tar entry ${JSON.stringify(entry.path)}: it goes through the symlink ${where}`, { path: entry.path, symlink: where });
        }
        throw new StrataError('TAR_MALFORMED', `malformed tarball: entry ${JSON.stringify(entry.path)} is inside ${where}, which the archive made a file`, { path: entry.path });
      }
    }
    return dir;
  }

  putDir(parts: string[], meta: DirMeta, entry: TarEntry): void {
    if (parts.length === 0) {
      this.root.meta = meta;
      return;
    }
    const parent = this.parentOf(parts, entry);
    const name = parts[parts.length - 1];
    const existing = parent.entries.get(name);
    if (existing?.kind === 'dir') {
      // A directory listed again keeps its contents and takes the new metadata, as extraction does.
      existing.meta = meta;
      return;
    }
    if (existing) this.forget(existing);
    parent.entries.set(name, { kind: 'dir', meta, entries: new Map() });
    this.stats.dirs++;
  }

  putFile(parts: string[], file: MFile, entry: TarEntry): void {
    if (parts.length === 0) {
      throw new StrataError('TAR_MALFORMED', `malformed tarball: the root entry ${JSON.stringify(entry.path)} is not a directory`, { path: entry.path });
    }
    const parent = this.parentOf(parts, entry);
    const name = parts[parts.length - 1];
    const existing = parent.entries.get(name);
    if (existing) this.forget(existing);
    parent.entries.set(name, file);
    if ((file.meta.mode & S_IFMT) === S_IFLNK) this.stats.symlinks++;
    else {
      this.stats.files++;
      this.stats.bytes += file.size;
    }
  }

  private forget(node: MNode): void {
    if (node.kind === 'dir') {
      this.stats.dirs--;
      for (const child of node.entries.values()) this.forget(child);
    } else if ((node.meta.mode & S_IFMT) === S_IFLNK) {
      this.stats.symlinks--;
    } else {
      this.stats.files--;
      this.stats.bytes -= node.size;
    }
  }
}

/** The decompressed bytes of a tarball (plain, gzip, xz or zstd, by content), for readers other than commit. */
export function openTarball(p: string): TarInput {
  const head = readHead(p);
  if (head === null) throw new StrataError('SOURCE_NOT_FOUND', `${p} is not a tarball`, { path: p });
  const compression = sniff(head);
  if (compression === null) throw new StrataError('TAR_MALFORMED', `${p} is not a tarball (no gzip, xz or zstd magic, no valid tar header)`, { path: p });
  return openInput(p, compression);
}

/** A regular file whose bytes are being read. */
interface OpenFile {
  entry: TarEntry;
  parts: string[];
  meta: FileMeta;
  /** In memory… */
  buffer?: ArrayBuffer;
  view?: Uint8Array;
  /** …or spilled to a temp file. */
  spill?: { file: string; fd: number };
  filled: number;
}

const SPECIAL_KINDS: Partial<Record<TarEntry['type'], string>> = {
  'char-device': 'character device',
  'block-device': 'block device',
  fifo: 'fifo',
};

export async function readSourceTar(p: string, opts: SourceOptions, stage: StageFn, stats: SourceStats): Promise<MDir> {
  const head = readHead(p);
  if (head === null) throw new StrataError('SOURCE_NOT_FOUND', `${p} is not a directory or a tarball`, { path: p });
  const compression = sniff(head);
  if (compression === null) throw new StrataError('TAR_MALFORMED', `${p} is not a tarball (no gzip, xz or zstd magic, no valid tar header)`, { path: p });

  const tree = new TreeBuilder(opts, stats);
  const reader = new TarReader();
  const input = openInput(p, compression);

  // Backpressure: staged entries not known to be done, oldest first, and what they hold.
  const inFlight: { done: Promise<unknown>; settled: boolean }[] = [];
  let bytesInFlight = 0;
  let spillsInFlight = 0;
  const spills: Promise<unknown>[] = [];
  let tmpDir: string | null = null;
  // The regular file whose data is being read (a holder, so closures and the loop agree on it).
  const cur: { open: OpenFile | null } = { open: null };

  const track = (checksum: Promise<Checksum>, bytes: number, spilled: boolean): void => {
    checksum.catch(() => undefined); // observed by the commit, or by makeRoom below
    if (spilled) spillsInFlight++;
    else bytesInFlight += bytes;
    const item = { done: Promise.resolve() as Promise<unknown>, settled: false };
    item.done = checksum.finally(() => {
      item.settled = true;
      if (spilled) spillsInFlight--;
      else bytesInFlight -= bytes;
    });
    item.done.catch(() => undefined);
    // Forget what is done already, so a tarball of many small files keeps this list short.
    while (inFlight.length > 0 && inFlight[0].settled) inFlight.shift();
    inFlight.push(item);
  };

  const makeRoom = async (bytes: number, spill: boolean): Promise<void> => {
    while (inFlight.length > 0 && (spill ? spillsInFlight >= MAX_SPILLS_IN_FLIGHT : bytesInFlight + bytes > MAX_BYTES_IN_FLIGHT)) {
      await inFlight.shift()?.done; // a failed stage fails the import now rather than at the end
    }
  };

  const fileMeta = (e: TarEntry, mode: number, symlinkTarget: string): FileMeta =>
    applyOwner({ uid: e.uid, gid: e.gid, mode, symlinkTarget, xattrs: opts.noXattrs ? [] : e.xattrs }, opts);

  const beginFile = async (entry: TarEntry, parts: string[]): Promise<void> => {
    const meta = fileMeta(entry, S_IFREG | entry.mode, '');
    if (entry.size <= SPILL_THRESHOLD) {
      await makeRoom(entry.size, false);
      const buffer = new ArrayBuffer(entry.size);
      cur.open = { entry, parts, meta, buffer, view: new Uint8Array(buffer), filled: 0 };
      return;
    }
    await makeRoom(entry.size, true);
    try {
      tmpDir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'strata-tar-'));
    } catch (err) {
      throw ioError(err, 'create a temp directory in', os.tmpdir());
    }
    const file = path.join(tmpDir, `entry-${spills.length}`);
    let fd: number;
    try {
      fd = fs.openSync(file, 'wx', 0o600);
    } catch (err) {
      throw ioError(err, 'create', file);
    }
    cur.open = { entry, parts, meta, spill: { file, fd }, filled: 0 };
  };

  const appendData = (f: OpenFile, bytes: Buffer): void => {
    if (f.view) f.view.set(bytes, f.filled);
    else if (f.spill) {
      try {
        for (let off = 0; off < bytes.length; ) off += fs.writeSync(f.spill.fd, bytes, off);
      } catch (err) {
        throw ioError(err, 'write', f.spill.file);
      }
    }
    f.filled += bytes.length;
  };

  const endFile = (f: OpenFile): void => {
    let checksum: Promise<Checksum>;
    if (f.buffer && f.view) {
      checksum = stage({ data: f.view, meta: f.meta, size: f.entry.size }, [f.buffer]);
      track(checksum, f.entry.size, false);
    } else {
      const spill = f.spill as { file: string; fd: number };
      fs.closeSync(spill.fd);
      checksum = stage({ source: spill.file, meta: f.meta, size: f.entry.size });
      track(checksum, f.entry.size, true);
      const removed = checksum.then(() => undefined, () => undefined).finally(() => fs.rmSync(spill.file, { force: true }));
      spills.push(removed);
    }
    tree.putFile(f.parts, { kind: 'file', checksum, meta: f.meta, size: f.entry.size }, f.entry);
  };

  const onEntry = async (entry: TarEntry): Promise<void> => {
    const parts = safeTarPath(entry.path);
    const special = SPECIAL_KINDS[entry.type];
    if (special) {
      if (opts.skipSpecial) {
        stats.skipped.push(parts.join('/') || '.');
        return;
      }
      throw new StrataError('UNSUPPORTED_FILE', `cannot commit ${special} ${JSON.stringify(entry.path)} from ${p}: OS trees hold only files, directories and symlinks (use --skip-special to leave it out)`, { path: entry.path, kind: special });
    }
    switch (entry.type) {
      case 'directory': {
        const meta = applyOwner({ uid: entry.uid, gid: entry.gid, mode: S_IFDIR | entry.mode, xattrs: opts.noXattrs ? [] : entry.xattrs }, opts);
        tree.putDir(parts, meta, entry);
        return;
      }
      case 'symlink': {
        if (entry.linkpath === '') throw new StrataError('TAR_MALFORMED', `malformed tarball: symlink ${JSON.stringify(entry.path)} has an empty target`, { path: entry.path });
        if (entry.linkpath.includes('\0')) throw new StrataError('UNSAFE_PATH', `unsafe tar entry ${JSON.stringify(entry.path)}: its symlink target holds a NUL byte`, { path: entry.path });
        // Symlink permissions mean nothing on Linux; OSTree's directory commits record 0777.
        const meta = fileMeta(entry, S_IFLNK | 0o777, entry.linkpath);
        const checksum = stage({ meta, size: 0 });
        track(checksum, 0, false);
        tree.putFile(parts, { kind: 'file', checksum, meta, size: 0 }, entry);
        return;
      }
      case 'hardlink': {
        const target = tree.lookup(safeTarPath(entry.linkpath));
        if (target === undefined || target.kind !== 'file') {
          const why = target === undefined ? 'names no earlier entry' : 'names a directory';
          throw new StrataError('TAR_MALFORMED', `malformed tarball: hard link ${JSON.stringify(entry.path)} -> ${JSON.stringify(entry.linkpath)} ${why}`, { path: entry.path, target: entry.linkpath });
        }
        // Same object: same content and metadata as the entry it names.
        tree.putFile(parts, { kind: 'file', checksum: target.checksum, meta: target.meta, size: target.size }, entry);
        return;
      }
      case 'file':
        if (parts.length === 0) throw new StrataError('TAR_MALFORMED', `malformed tarball: the root entry ${JSON.stringify(entry.path)} is not a directory`, { path: entry.path });
        await beginFile(entry, parts);
        return;
    }
  };

  const onEvent = (ev: Exclude<TarEvent, { kind: 'entry' }>): void => {
    switch (ev.kind) {
      case 'data':
        if (cur.open) appendData(cur.open, ev.bytes);
        return;
      case 'entry-end':
        if (cur.open) {
          const f = cur.open;
          cur.open = null;
          endFile(f);
        }
        return;
      case 'end':
        return;
    }
  };

  try {
    try {
      for await (const chunk of input.chunks) {
        for (const ev of reader.push(chunk as Buffer)) {
          // Only a new entry may wait (for room in memory); data is copied at once.
          if (ev.kind === 'entry') await onEntry(ev.entry);
          else onEvent(ev);
        }
      }
    } catch (err) {
      if (err instanceof StrataError) throw err;
      const e = err as NodeJS.ErrnoException;
      if (typeof e?.code === 'string' && e.code.startsWith('Z_')) throw decompressError(p, `gzip data is corrupt or truncated (${e.message})`);
      throw ioError(err, 'read', p);
    }
    await input.finish();
    reader.end();
    return tree.root;
  } catch (err) {
    // Name the tarball in the data of errors that come from its entries.
    if (err instanceof StrataError && err.data.source === undefined) (err.data as Record<string, unknown>).source = p;
    throw err;
  } finally {
    input.close();
    if (cur.open?.spill) fs.closeSync(cur.open.spill.fd);
    if (tmpDir !== null) {
      await Promise.allSettled(spills);
      fs.rmSync(tmpDir, { recursive: true, force: true });
    }
  }
}
