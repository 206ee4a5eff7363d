// Placeholder replaced by the tar importer (in progress).
import { StrataError } from '../errors.js';
import type { MDir, SourceOptions, SourceStats, StageFn } from './mtree.js';
export function looksLikeTarball(p: string): boolean {
  return /\.(tar|tar\.gz|tgz|tar\.xz|txz|tar\.zst|tzst)$/.test(p);
}
export async function readSourceTar(p: string, _o: SourceOptions, _s: StageFn, _st: SourceStats): Promise<MDir> {
  throw new StrataError('TAR_MALFORMED', `tarball import not ready: ${p}`);
}
