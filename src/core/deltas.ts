// Names and paths of static deltas, as libostree lays them out (ostree-core.c:
// static_delta_path_base, _ostree_parse_delta_name). Pure.
//
// A delta is named `TO` (from nothing) or `FROM-TO` (hex checksums). On disk
// checksums are written in "modified base64": standard base64 of the 32
// bytes without the trailing `=`, with `/` replaced by `_` (43 characters).
// - deltas/T[0..2]/T[2..]               a delta from nothing to T
// - deltas/F[0..2]/F[2..]-T             a delta from F to T
//   each a directory with `superblock`, parts `0`, `1`, … and maybe `meta`
// - delta-indexes/T[0..2]/T[2..].index  the deltas that lead to T

import { type Checksum, isChecksum } from './objects.js';

export function checksumToModifiedBase64(checksum: Checksum): string {
  return Buffer.from(checksum, 'hex').toString('base64').replace(/=$/, '').replace(/\//g, '_');
}

/** The checksum of a modified-base64 name, or null when it is not one. */
export function modifiedBase64ToChecksum(text: string): Checksum | null {
  if (!/^[A-Za-z0-9+_]{42}[AEIMQUYcgkosw048]$/.test(text)) return null;
  const hex = Buffer.from(text.replace(/_/g, '/') + '=', 'base64').toString('hex');
  return isChecksum(hex) ? hex : null;
}

export interface DeltaName {
  from: Checksum | null;
  to: Checksum;
}

/** `TO` or `FROM-TO`, as in the summary and delta indexes. */
export function deltaName(d: DeltaName): string {
  return d.from ? `${d.from}-${d.to}` : d.to;
}

export function parseDeltaName(name: string): DeltaName | null {
  const [a, b, ...rest] = name.split('-');
  if (rest.length > 0) return null;
  if (b === undefined) return isChecksum(a) ? { from: null, to: a } : null;
  return isChecksum(a) && isChecksum(b) ? { from: a, to: b } : null;
}

/** The delta's directory relative to the repository, e.g. `deltas/ab/cdef…-ghij…`. */
export function staticDeltaDir(d: DeltaName): string {
  const to = checksumToModifiedBase64(d.to);
  if (!d.from) return `deltas/${to.slice(0, 2)}/${to.slice(2)}`;
  const from = checksumToModifiedBase64(d.from);
  return `deltas/${from.slice(0, 2)}/${from.slice(2)}-${to}`;
}

/** The delta named by the two directory levels under `deltas/`, or null when they name none. */
export function deltaFromDirNames(first: string, second: string): DeltaName | null {
  const joined = first + second;
  const dash = joined.indexOf('-');
  if (dash < 0) {
    const to = modifiedBase64ToChecksum(joined);
    return to ? { from: null, to } : null;
  }
  const from = modifiedBase64ToChecksum(joined.slice(0, dash));
  const to = modifiedBase64ToChecksum(joined.slice(dash + 1));
  return from && to ? { from, to } : null;
}

export function deltaIndexPath(to: Checksum): string {
  const b = checksumToModifiedBase64(to);
  return `delta-indexes/${b.slice(0, 2)}/${b.slice(2)}.index`;
}

/**
 * The superblock digest (hex) of the delta FROM→TO when a summary offers it,
 * else undefined: what `pull` passes on as `superblockDigest`.
 */
export function offeredDelta(view: { staticDeltas: Record<string, string> }, from: Checksum | null, to: Checksum): string | undefined {
  const name = deltaName({ from, to });
  return Object.hasOwn(view.staticDeltas, name) ? view.staticDeltas[name] : undefined;
}
