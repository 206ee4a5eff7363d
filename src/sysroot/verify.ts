// `strata admin verify`: tamper detection. The deployment's files are
// re-hashed on all cores and compared with its commit; anything modified,
// added or removed outside /etc and /var (which are meant to change) is
// reported.

import { verifyTree, type VerifyTreeResult } from '../repo/verify-tree.js';
import { findDeployment } from './manage.js';
import { Sysroot, deploymentId } from './sysroot.js';

export interface VerifyDeploymentResult extends VerifyTreeResult {
  deployment: string;
  index: number;
  ok: boolean;
}

export async function verifyDeployment(opts: { sysroot: string; which?: string; booted?: string; onProgress?: (done: number, total: number) => void }): Promise<VerifyDeploymentResult> {
  const sysroot = Sysroot.open(opts.sysroot);
  const list = sysroot.deployments();
  const d = opts.which !== undefined ? findDeployment(list, opts.which) : sysroot.booted(list, opts.booted) ?? findDeployment(list, '0');
  const r = await verifyTree({ repo: sysroot.repo(), commit: d.checksum, root: sysroot.deploymentDir(d), exclude: ['etc', 'var'], onProgress: opts.onProgress });
  return { deployment: deploymentId(d), index: d.index, ok: r.differences.length === 0, ...r };
}
