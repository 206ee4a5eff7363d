// The repository read API (docs/fleet-api.md, "Repository API") as a Fastify
// plugin: refs, history, tree and package diffs, file content and, for
// `strata ui --sysroot`, the machine's deployments. Read-only. The fleet
// server registers it inside its authenticated scope; `strata ui` as it is.

import { isUtf8 } from 'node:buffer';
import path from 'node:path';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { z } from 'zod';
import { StrataError, httpStatusOf } from '../errors.js';
import type { Checksum } from '../core/objects.js';
import { Repo } from '../repo/repo.js';
import { listRefs, resolveRev } from '../repo/refs.js';
import { describeCommit } from '../repo/history.js';
import { type DiffResult, diffCommits } from '../repo/diff.js';
import { dbDiffCommits } from '../repo/db-diff.js';
import { type TreeNode, describeNode, resolveTreePath, rootNode, treeChildren } from '../repo/walk.js';
import { status } from '../sysroot/status.js';

export interface RepoApiOptions {
  /** Repository path. */
  repo: string;
  /** A sysroot whose deployments `GET /v1/sysroot/status` reports (`strata ui --sysroot`). */
  sysroot?: string;
  /** What the dashboard shows: a whole fleet, or one machine. */
  mode?: 'fleet' | 'machine';
  /** Largest file `GET /v1/repo/file` returns as text (default 512 KiB). */
  fileSizeCap?: number;
}

/** Sizes of a folder in the old and new tree (null where it does not exist). */
export interface FolderSize {
  oldSize: number | null;
  newSize: number | null;
}

export interface RepoDiffResponse extends DiffResult {
  /** For the root and every folder holding a change: its total size in each tree. */
  folders: Record<string, FolderSize>;
}

export interface RepoFileResponse {
  commit: Checksum;
  path: string;
  type: 'file' | 'symlink' | 'dir';
  size: number;
  /** The content as UTF-8 text, or null (see `reason`). */
  text: string | null;
  reason?: 'binary' | 'too-large' | 'not-a-file';
  target?: string;
}

const REV = z.string().min(1).max(512);
const DiffQuery = z.object({ from: REV, to: REV });
const FileQuery = z.object({ commit: REV, path: z.string().min(1).max(4096) });
const LogQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) });

function sendError(reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof StrataError) return reply.code(httpStatusOf(err.code)).send({ error: { code: err.code, message: err.message } });
  if (err instanceof z.ZodError) {
    const first = err.issues[0];
    return reply.code(400).send({ error: { code: 'USAGE', message: `${first?.path.join('.') || 'query'}: ${first?.message ?? 'invalid'}` } });
  }
  throw err;
}

/** Total bytes under each tree, memoized by checksum: identical subtrees of both commits are counted once. */
class SizeCounter {
  private readonly trees = new Map<Checksum, number>();
  private readonly files = new Map<Checksum, number>();
  constructor(private readonly repo: Repo) {}

  of(node: TreeNode): number {
    if (node.kind === 'file') {
      let s = this.files.get(node.checksum);
      if (s === undefined) this.files.set(node.checksum, (s = describeNode(this.repo, node).size));
      return s;
    }
    let s = this.trees.get(node.tree);
    if (s === undefined) {
      s = 0;
      for (const [, child] of treeChildren(this.repo, node.tree)) s += this.of(child);
      this.trees.set(node.tree, s);
    }
    return s;
  }

  at(commit: Checksum, p: string): number | null {
    try {
      const node = p === '/' ? rootNode(this.repo, commit) : resolveTreePath(this.repo, commit, p);
      return node.kind === 'dir' ? this.of(node) : null;
    } catch (err) {
      if (err instanceof StrataError && (err.code === 'PATH_NOT_FOUND' || err.code === 'NOT_A_DIRECTORY')) return null;
      throw err;
    }
  }
}

/** The diff plus folder totals; the last few are kept, since the dashboard asks again as people click. */
function diffWithFolders(repo: Repo, sizes: SizeCounter, from: Checksum, to: Checksum): RepoDiffResponse {
  const d = diffCommits(repo, from, to);
  const folders = new Set<string>(['/']);
  for (const e of d.entries) {
    if (e.type === 'dir') folders.add(e.path);
    for (let i = e.path.lastIndexOf('/'); i > 0; i = e.path.lastIndexOf('/', i - 1)) {
      const parent = e.path.slice(0, i);
      if (folders.has(parent)) break;
      folders.add(parent);
    }
  }
  const out: Record<string, FolderSize> = {};
  for (const f of [...folders].sort()) out[f] = { oldSize: sizes.at(from, f), newSize: sizes.at(to, f) };
  return { ...d, folders: out };
}

function looksBinary(b: Buffer): boolean {
  const head = b.subarray(0, 8192);
  if (head.includes(0)) return true;
  return !isUtf8(head.subarray(0, lastWholeChar(head)));
}

/** Cuts a trailing partial UTF-8 sequence, so a sample of a text file still reads as text. */
function lastWholeChar(b: Buffer): number {
  let i = b.length;
  for (let k = 1; k <= 3 && i - k >= 0; k++) {
    const c = b[i - k];
    if ((c & 0xc0) === 0x80) continue;
    if (c >= 0xc0) return i - k;
    break;
  }
  return i;
}

export const repoApi: FastifyPluginAsync<RepoApiOptions> = async (app, opts) => {
  const repo = Repo.open(opts.repo);
  const sizes = new SizeCounter(repo);
  const cap = opts.fileSizeCap ?? 512 * 1024;
  const diffCache = new Map<string, RepoDiffResponse>();

  app.setErrorHandler((err, _req, reply) => sendError(reply, err));

  app.get('/v1/repo/info', async () => ({ mode: opts.mode ?? 'fleet', sysroot: !!opts.sysroot, repo: path.basename(path.resolve(opts.repo)) }));

  app.get('/v1/repo/refs', async () =>
    listRefs(repo).map((r) => {
      const c = describeCommit(repo, r.checksum);
      return { name: r.name, commit: r.checksum, version: c.version, timestamp: c.date, subject: c.subject };
    }),
  );

  app.get<{ Params: { '*': string } }>('/v1/repo/log/*', async (req) => {
    const { limit } = LogQuery.parse(req.query);
    const out = [];
    let cur: Checksum | null = resolveRev(repo, req.params['*']);
    while (cur && out.length < limit) {
      const c = describeCommit(repo, cur);
      out.push({ commit: c.checksum, subject: c.subject, version: c.version, timestamp: c.date, parent: c.parent });
      cur = c.parentPresent ? c.parent : null;
    }
    return out;
  });

  app.get('/v1/repo/diff', async (req) => {
    const q = DiffQuery.parse(req.query);
    const from = resolveRev(repo, q.from);
    const to = resolveRev(repo, q.to);
    const key = `${from}..${to}`;
    let r = diffCache.get(key);
    if (!r) {
      r = diffWithFolders(repo, sizes, from, to);
      diffCache.set(key, r);
      if (diffCache.size > 4) diffCache.delete(diffCache.keys().next().value as string);
    }
    return r;
  });

  app.get('/v1/repo/file', async (req): Promise<RepoFileResponse> => {
    const q = FileQuery.parse(req.query);
    const commit = resolveRev(repo, q.commit);
    const node = resolveTreePath(repo, commit, q.path);
    const info = describeNode(repo, node);
    const base = { commit, path: q.path, type: info.type, size: info.size };
    if (node.kind !== 'file') return { ...base, text: null, reason: 'not-a-file' };
    if (info.type === 'symlink') return { ...base, text: null, reason: 'not-a-file', target: info.target };
    if (info.size > cap) return { ...base, text: null, reason: 'too-large' };
    const content = repo.loadFile(node.checksum).content ?? Buffer.alloc(0);
    if (looksBinary(content)) return { ...base, text: null, reason: 'binary' };
    return { ...base, text: content.toString('utf8') };
  });

  app.get('/v1/repo/packages/diff', async (req) => {
    const q = DiffQuery.parse(req.query);
    return dbDiffCommits(repo, resolveRev(repo, q.from), resolveRev(repo, q.to));
  });

  if (opts.sysroot) {
    const sysroot = opts.sysroot;
    app.get('/v1/sysroot/status', async () => status({ sysroot }));
  }
};
