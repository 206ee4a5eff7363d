// A streaming tar reader: push bytes in, get entries and their data out.
// Pure (Buffer only), so it can be fed from a file, a decompressor or a test.
// Reads ustar and v7 headers, GNU long names and links (L, K), pax extended
// headers (x, and g globals) with binary SCHILY.xattr values, and base-256
// numbers. Formats: POSIX.1-2001 pax, GNU tar's info manual ("Standard").

import { StrataError } from '../errors.js';
import type { Xattr } from './objects.js';

export const BLOCK = 512;

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'directory' | 'char-device' | 'block-device' | 'fifo';

export interface TarEntry {
  /** Path as the archive records it (pax and GNU long names applied); not yet made safe. */
  path: string;
  /** Target of a symlink or hard link, '' otherwise. */
  linkpath: string;
  type: TarEntryType;
  /** The header's type flag, for messages. */
  typeflag: string;
  /** Permission bits, setuid/setgid/sticky included (07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of data that follow the header (0 for links, directories, devices). */
  size: number;
  xattrs: Xattr[];
  /** Byte offset of the entry's header in the (decompressed) stream. */
  offset: number;
}

export type TarEvent =
  | { kind: 'entry'; entry: TarEntry }
  /** A piece of the current entry's data: a view into the pushed chunk, valid while it is. */
  | { kind: 'data'; bytes: Buffer }
  | { kind: 'entry-end' }
  /** The end-of-archive marker; anything after it is ignored. */
  | { kind: 'end' };

/** GNU long names and pax headers are buffered whole; past these sizes the archive is hostile. */
const MAX_LONG_NAME = 1024 * 1024;
const MAX_PAX_HEADER = 16 * 1024 * 1024;

const utf8 = new TextDecoder('utf-8', { fatal: true });

function malformed(message: string, data: Record<string, unknown> = {}): StrataError {
  return new StrataError('TAR_MALFORMED', `malformed tarball: ${message}`, data);
}

/** Decodes a name as UTF-8; OSTree tree names are UTF-8 strings, so anything else is refused. */
function decodeName(bytes: Buffer, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    const lossy = bytes.toString('utf8');
    throw new StrataError('UNSAFE_PATH', `tar entry ${JSON.stringify(lossy)} has a ${what} that is not valid UTF-8`, { path: lossy });
  }
}

/** A NUL-terminated header field (the NUL is optional when the field is full). */
function cString(block: Buffer, start: number, len: number): Buffer {
  const field = block.subarray(start, start + len);
  const nul = field.indexOf(0);
  return nul === -1 ? field : field.subarray(0, nul);
}

/** A numeric header field: octal ASCII, or base-256 when the top bit of the first byte is set. */
export function parseNumeric(field: Buffer, name: string): number {
  if (field.length > 0 && field[0] & 0x80) {
    if (field[0] === 0xff) throw malformed(`negative base-256 ${name} field`);
    let v = BigInt(field[0] & 0x7f);
    for (let i = 1; i < field.length; i++) v = (v << 8n) | BigInt(field[i]);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed(`${name} field is too large`);
    return Number(v);
  }
  let i = 0;
  while (i < field.length && (field[i] === 0x20 || field[i] === 0)) i++; // leading blanks; all-NUL means 0
  let v = 0;
  let digits = 0;
  while (i < field.length && field[i] >= 0x30 && field[i] <= 0x37) {
    v = v * 8 + (field[i] - 0x30);
    i++;
    digits++;
  }
  while (i < field.length && (field[i] === 0x20 || field[i] === 0)) i++;
  if (i !== field.length) throw malformed(`${name} field ${JSON.stringify(field.toString('latin1'))} is not an octal number`);
  if (digits === 0) return 0;
  if (!Number.isSafeInteger(v)) throw malformed(`${name} field is too large`);
  return v;
}

/**
 * True when a 512-byte block is a tar header whose checksum is right: the sum
 * of its bytes with the checksum field counted as spaces. Old writers summed
 * signed chars, so both sums are accepted, as GNU tar and libarchive do.
 */
export function isValidHeader(block: Buffer): boolean {
  if (block.length < BLOCK) return false;
  let recorded: number;
  try {
    recorded = parseNumeric(block.subarray(148, 156), 'checksum');
  } catch {
    return false;
  }
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i];
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return recorded === unsigned || recorded === signed;
}

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

const padded = (n: number): number => Math.ceil(n / BLOCK) * BLOCK;

/** pax keywords strata uses; others (times, uname, comments) do not enter an OSTree commit. */
interface PaxRecords {
  path?: Buffer;
  linkpath?: Buffer;
  size?: Buffer;
  uid?: Buffer;
  gid?: Buffer;
  mode?: Buffer;
  sparse?: boolean;
  /** xattr name → raw value. */
  xattrs: Map<string, Buffer>;
}

const emptyPax = (): PaxRecords => ({ xattrs: new Map() });

/**
 * Parses a pax extended header body: records `LEN KEY=VALUE\n` where LEN
 * counts the record's bytes, so values may hold any byte, NUL and newline too.
 */
export function parsePaxRecords(body: Buffer, into: PaxRecords = emptyPax(), global = false): PaxRecords {
  let pos = 0;
  while (pos < body.length) {
    // Writers pad the body with NULs to the block; stop there.
    if (body[pos] === 0) break;
    const space = body.indexOf(0x20, pos);
    if (space === -1 || space - pos > 20) throw malformed('pax record without a length');
    const lenText = body.toString('latin1', pos, space);
    if (!/^[0-9]+$/.test(lenText)) throw malformed(`pax record length ${JSON.stringify(lenText)} is not a number`);
    const len = Number(lenText);
    const end = pos + len;
    if (len < lenText.length + 3 || end > body.length || body[end - 1] !== 0x0a) throw malformed('pax record length does not match its record');
    const eq = body.indexOf(0x3d, space + 1);
    if (eq === -1 || eq >= end - 1) throw malformed('pax record without a key=value pair');
    let key: string;
    try {
      key = utf8.decode(body.subarray(space + 1, eq));
    } catch {
      throw malformed('pax record key is not valid UTF-8');
    }
    const value = Buffer.from(body.subarray(eq + 1, end - 1)); // own copy: the body buffer is reused
    applyPaxRecord(into, key, value, global);
    pos = end;
  }
  return into;
}

function applyPaxRecord(p: PaxRecords, key: string, value: Buffer, global: boolean): void {
  if (key.startsWith('SCHILY.xattr.')) {
    // An empty value is an empty attribute, not a deletion (GNU tar, libarchive agree).
    const name = key.slice('SCHILY.xattr.'.length);
    if (name === '' || name.includes('\0')) throw malformed(`pax xattr record with an empty or NUL-holding name ${JSON.stringify(name)}`);
    p.xattrs.set(name, value);
    return;
  }
  if (key.startsWith('GNU.sparse.')) {
    p.sparse = true;
    return;
  }
  if (key === 'path' || key === 'linkpath' || key === 'size' || key === 'uid' || key === 'gid' || key === 'mode') {
    // An empty value removes the keyword, so the header field (or, in an x header, no global) applies.
    if (value.length === 0) {
      if (global) delete p[key];
      else p[key] = Buffer.alloc(0);
    } else {
      p[key] = value;
    }
  }
}

function paxNumber(value: Buffer, key: string, radix: 8 | 10): number {
  const text = value.toString('latin1');
  const re = radix === 8 ? /^[0-7]+$/ : /^[0-9]+$/;
  if (!re.test(text)) throw malformed(`pax ${key} ${JSON.stringify(text)} is not a number`);
  const v = parseInt(text, radix);
  if (!Number.isSafeInteger(v)) throw malformed(`pax ${key} is too large`);
  return v;
}

type State =
  | { at: 'header' }
  | { at: 'meta'; typeflag: string; remaining: number; pad: number; chunks: Buffer[]; offset: number }
  | { at: 'data'; remaining: number; pad: number }
  | { at: 'pad'; remaining: number }
  | { at: 'end' };

/**
 * Push parser. `push(chunk)` returns the events the chunk completes; `end()`
 * checks that the archive did not stop early. Never blocks and never buffers
 * more than one header, one pax header or one long name.
 */
export class TarReader {
  private state: State = { at: 'header' };
  private readonly headerBuf = Buffer.alloc(BLOCK);
  private headerFill = 0;
  private offset = 0;
  private pax: PaxRecords = emptyPax();
  private readonly globals: PaxRecords = emptyPax();
  private longName: Buffer | null = null;
  private longLink: Buffer | null = null;
  /** Set once a pax header is seen: then hard links may carry data (POSIX.1-2001). */
  private paxFormat = false;
  private current = '';

  push(chunk: Buffer): TarEvent[] {
    const events: TarEvent[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      const st = this.state;
      switch (st.at) {
        case 'end':
          this.offset += chunk.length - pos;
          return events;
        case 'header': {
          const n = Math.min(BLOCK - this.headerFill, chunk.length - pos);
          chunk.copy(this.headerBuf, this.headerFill, pos, pos + n);
          this.headerFill += n;
          pos += n;
          if (this.headerFill === BLOCK) {
            this.headerFill = 0;
            const headerOffset = this.offset;
            this.offset += BLOCK;
            this.onHeader(this.headerBuf, headerOffset, events);
          }
          break;
        }
        case 'meta': {
          const n = Math.min(st.remaining, chunk.length - pos);
          st.chunks.push(Buffer.from(chunk.subarray(pos, pos + n)));
          st.remaining -= n;
          pos += n;
          this.offset += n;
          if (st.remaining === 0) {
            this.onMeta(st.typeflag, Buffer.concat(st.chunks), st.offset);
            this.state = st.pad > 0 ? { at: 'pad', remaining: st.pad } : { at: 'header' };
          }
          break;
        }
        case 'data': {
          const n = Math.min(st.remaining, chunk.length - pos);
          if (n > 0) events.push({ kind: 'data', bytes: chunk.subarray(pos, pos + n) });
          st.remaining -= n;
          pos += n;
          this.offset += n;
          if (st.remaining === 0) {
            events.push({ kind: 'entry-end' });
            this.state = st.pad > 0 ? { at: 'pad', remaining: st.pad } : { at: 'header' };
          }
          break;
        }
        case 'pad': {
          const n = Math.min(st.remaining, chunk.length - pos);
          st.remaining -= n;
          pos += n;
          this.offset += n;
          if (st.remaining === 0) this.state = { at: 'header' };
          break;
        }
      }
    }
    return events;
  }

  /** Call at the end of input; throws TAR_MALFORMED when the archive was cut short. */
  end(): void {
    switch (this.state.at) {
      case 'end':
        return;
      case 'header':
        if (this.headerFill > 0) throw malformed(`truncated inside a header at byte ${this.offset}`, { offset: this.offset });
        if (this.longName || this.longLink || this.hasPendingPax()) throw malformed('truncated after an extended header', { offset: this.offset });
        throw malformed('truncated: no end-of-archive marker (the file was cut short?)', { offset: this.offset });
      case 'meta':
        throw malformed(`truncated inside an extended header at byte ${this.offset}`, { offset: this.offset });
      case 'data':
      case 'pad':
        throw malformed(`truncated inside the data of ${JSON.stringify(this.current)}`, { offset: this.offset, path: this.current });
    }
  }

  private hasPendingPax(): boolean {
    const p = this.pax;
    return p.path !== undefined || p.linkpath !== undefined || p.size !== undefined || p.uid !== undefined || p.gid !== undefined || p.mode !== undefined || p.xattrs.size > 0;
  }

  private onHeader(block: Buffer, offset: number, events: TarEvent[]): void {
    if (isZeroBlock(block)) {
      // GNU tar stops at the first zero block too (the second is only a convention).
      this.state = { at: 'end' };
      events.push({ kind: 'end' });
      return;
    }
    if (!isValidHeader(block)) throw malformed(`bad header checksum at byte ${offset} (corrupt, or not a tar archive)`, { offset });
    const typeflag = block[156] === 0 ? '\0' : String.fromCharCode(block[156]);
    const size = parseNumeric(block.subarray(124, 136), 'size');

    if (typeflag === 'x' || typeflag === 'X' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      const limit = typeflag === 'L' || typeflag === 'K' ? MAX_LONG_NAME : MAX_PAX_HEADER;
      if (size > limit) throw malformed(`extended header of ${size} bytes at byte ${offset} is too large`, { offset });
      if (size === 0) this.onMeta(typeflag, Buffer.alloc(0), offset);
      else this.state = { at: 'meta', typeflag, remaining: size, pad: padded(size) - size, chunks: [], offset };
      return;
    }

    const entry = this.buildEntry(block, typeflag, size, offset);
    this.current = entry.path;
    events.push({ kind: 'entry', entry });
    // Data follows regular files; for other types the size field is ignored, as
    // libarchive does, except pax hard links, which may carry data.
    const dataSize = entry.type === 'file' || typeflag === 'D' || (entry.type === 'hardlink' && this.paxFormat) ? entry.size : 0;
    if (entry.type !== 'file') entry.size = 0;
    if (dataSize === 0) {
      events.push({ kind: 'entry-end' });
      this.state = { at: 'header' };
    } else if (entry.type === 'file') {
      this.state = { at: 'data', remaining: dataSize, pad: padded(dataSize) - dataSize };
    } else {
      events.push({ kind: 'entry-end' });
      this.state = { at: 'pad', remaining: padded(dataSize) };
    }
  }

  private onMeta(typeflag: string, body: Buffer, offset: number): void {
    switch (typeflag) {
      case 'L':
      case 'K': {
        // GNU long names are NUL-terminated; a NUL inside stays and is refused later.
        let end = body.length;
        while (end > 0 && body[end - 1] === 0) end--;
        if (typeflag === 'L') this.longName = body.subarray(0, end);
        else this.longLink = body.subarray(0, end);
        return;
      }
      case 'g':
        this.paxFormat = true;
        parsePaxRecords(body, this.globals, true);
        return;
      default: // x, and Solaris X
        this.paxFormat = true;
        try {
          parsePaxRecords(body, this.pax);
        } catch (err) {
          if (err instanceof StrataError) err.data.offset = offset;
          throw err;
        }
    }
  }

  private buildEntry(block: Buffer, typeflag: string, headerSize: number, offset: number): TarEntry {
    const pax = this.pax;
    const g = this.globals;
    this.pax = emptyPax();
    const longName = this.longName;
    const longLink = this.longLink;
    this.longName = null;
    this.longLink = null;

    // ustar's prefix field exists only with the POSIX magic; GNU's old format keeps times there.
    const posix = block.toString('latin1', 257, 263) === 'ustar\0';
    let rawPath = cString(block, 0, 100);
    if (posix && block[345] !== 0) rawPath = Buffer.concat([cString(block, 345, 155), Buffer.from('/'), rawPath]);
    const pick = (own: Buffer | undefined, glob: Buffer | undefined): Buffer | undefined =>
      own !== undefined ? (own.length > 0 ? own : undefined) : glob;

    const pathBytes = pick(pax.path, g.path) ?? longName ?? rawPath;
    const linkBytes = pick(pax.linkpath, g.linkpath) ?? longLink ?? cString(block, 157, 100);
    const path = decodeName(pathBytes, 'name');
    const linkpath = decodeName(linkBytes, 'link target');

    const sizeRec = pick(pax.size, g.size);
    const uidRec = pick(pax.uid, g.uid);
    const gidRec = pick(pax.gid, g.gid);
    const modeRec = pick(pax.mode, g.mode);
    const size = sizeRec ? paxNumber(sizeRec, 'size', 10) : headerSize;
    const uid = uidRec ? paxNumber(uidRec, 'uid', 10) : parseNumeric(block.subarray(108, 116), 'uid');
    const gid = gidRec ? paxNumber(gidRec, 'gid', 10) : parseNumeric(block.subarray(116, 124), 'gid');
    const mode = (modeRec ? paxNumber(modeRec, 'mode', 8) : parseNumeric(block.subarray(100, 108), 'mode')) & 0o7777;
    if (uid > 0xffffffff || gid > 0xffffffff) throw malformed(`${JSON.stringify(path)} has a uid or gid beyond 32 bits`, { path });

    const xattrMap = new Map<string, Buffer>();
    for (const [k, v] of g.xattrs) xattrMap.set(k, v);
    for (const [k, v] of pax.xattrs) xattrMap.set(k, v);
    const xattrs: Xattr[] = [...xattrMap].map(([name, value]) => ({ name, value }));

    let type: TarEntryType;
    switch (typeflag) {
      case '1': type = 'hardlink'; break;
      case '2': type = 'symlink'; break;
      case '3': type = 'char-device'; break;
      case '4': type = 'block-device'; break;
      case '5': case 'D': type = 'directory'; break; // D: GNU dumpdir, a directory plus a listing
      case '6': type = 'fifo'; break;
      case 'S':
        throw new StrataError('UNSUPPORTED_FILE', `tar entry ${JSON.stringify(path)} is a GNU sparse file, which strata does not read; recreate the tarball without --sparse`, { path, typeflag });
      case 'M': case 'N': case 'V':
        throw new StrataError('UNSUPPORTED_FILE', `tar entry ${JSON.stringify(path)} has GNU type '${typeflag}' (multi-volume or old long-name archive), which strata does not read`, { path, typeflag });
      default:
        // '0', '\0', '7' and, per POSIX, any unknown type: a regular file.
        // Pre-POSIX archives mark directories by a trailing slash instead.
        type = (typeflag === '0' || typeflag === '\0') && path.endsWith('/') ? 'directory' : 'file';
    }
    if (type === 'file' && (pax.sparse || g.sparse)) {
      throw new StrataError('UNSUPPORTED_FILE', `tar entry ${JSON.stringify(path)} is a GNU sparse file, which strata does not read; recreate the tarball without --sparse`, { path, typeflag });
    }
    return {
      path,
      linkpath: type === 'symlink' || type === 'hardlink' ? linkpath : '',
      type,
      typeflag,
      mode,
      uid,
      gid,
      size,
      xattrs,
      offset,
    };
  }
}

/**
 * Makes a tar path safe to place in a tree: strips leading `/` and `./` (as
 * tar extraction does) and trailing slashes, then refuses `..`, empty or `.`
 * components and NUL anywhere. Returns the components; [] is the root itself.
 */
export function safeTarPath(raw: string): string[] {
  const unsafe = (why: string) =>
    new StrataError('UNSAFE_PATH', `unsafe tar entry ${JSON.stringify(raw)}: ${why}`, { path: raw });
  if (raw.includes('\0')) throw unsafe('the name holds a NUL byte');
  let p = raw;
  for (;;) {
    if (p.startsWith('/')) p = p.slice(1);
    else if (p.startsWith('./')) p = p.slice(2);
    else break;
  }
  while (p.endsWith('/')) p = p.slice(0, -1);
  if (p === '' || p === '.') return [];
  const parts = p.split('/');
  for (const part of parts) {
    if (part === '..') throw unsafe("'..' would escape the tree");
    if (part === '') throw unsafe('empty path component');
    if (part === '.') throw unsafe("'.' path component");
  }
  return parts;
}
