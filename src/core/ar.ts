// Reads `ar` archives, the container of Debian packages (deb(5)): a global
// header "!<arch>\n", then members, each a 60-byte header (name, mtime, uid,
// gid, mode, decimal size, "`\n") and its data padded to an even length.
// Pure (Buffer only). GNU long-name tables are not needed for .deb files.

import { StrataError } from '../errors.js';

export interface ArMember {
  name: string;
  data: Buffer;
}

const MAGIC = '!<arch>\n';
const HEADER = 60;

function malformed(why: string): StrataError {
  return new StrataError('DEB_MALFORMED', `not a valid ar archive: ${why}`, {});
}

export function readAr(buf: Buffer): ArMember[] {
  if (buf.length < MAGIC.length || buf.toString('latin1', 0, MAGIC.length) !== MAGIC) throw malformed('no !<arch> header');
  const members: ArMember[] = [];
  let pos = MAGIC.length;
  while (pos < buf.length) {
    // Some writers pad the archive with a final newline.
    if (buf.length - pos === 1 && buf[pos] === 0x0a) break;
    if (buf.length - pos < HEADER) throw malformed(`truncated member header at byte ${pos}`);
    const h = buf.subarray(pos, pos + HEADER);
    if (h[58] !== 0x60 || h[59] !== 0x0a) throw malformed(`bad member header magic at byte ${pos}`);
    const name = h.toString('latin1', 0, 16).trimEnd().replace(/\/$/, '');
    const sizeText = h.toString('latin1', 48, 58).trim();
    if (!/^\d+$/.test(sizeText)) throw malformed(`member ${JSON.stringify(name)} has size ${JSON.stringify(sizeText)}`);
    const size = Number(sizeText);
    const start = pos + HEADER;
    if (start + size > buf.length) throw malformed(`member ${JSON.stringify(name)} is cut short (${size} bytes declared, ${buf.length - start} present)`);
    members.push({ name, data: buf.subarray(start, start + size) });
    pos = start + size + (size % 2);
  }
  return members;
}
