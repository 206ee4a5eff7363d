// The tree diff's model: entries of `GET /v1/repo/diff` as a folder tree with
// counts and sizes per folder, and the rows a given expansion and filter
// show. Pure, so thousands of changes are handled without the DOM.

import type { ChangeKind, DiffEntry, FolderSize, RepoDiff } from './api.js';

export interface TreeNode {
  name: string;
  path: string;
  depth: number;
  isDir: boolean;
  /** The change at this path; absent for an unchanged folder that holds changes. */
  entry?: DiffEntry;
  size?: FolderSize;
  children: TreeNode[];
  parent: TreeNode | null;
  /** Changes at or under this node, by kind. */
  counts: Record<ChangeKind, number>;
}

export interface Row {
  node: TreeNode;
  expanded: boolean;
}

const zero = (): Record<ChangeKind, number> => ({ added: 0, removed: 0, modified: 0, metadata: 0 });

export function buildTree(d: RepoDiff): TreeNode {
  const root: TreeNode = { name: '/', path: '/', depth: 0, isDir: true, size: d.folders['/'], children: [], parent: null, counts: zero() };
  const byPath = new Map<string, TreeNode>([['/', root]]);
  const ensure = (p: string): TreeNode => {
    const found = byPath.get(p);
    if (found) return found;
    const cut = p.lastIndexOf('/');
    const parent = ensure(cut === 0 ? '/' : p.slice(0, cut));
    const node: TreeNode = { name: p.slice(cut + 1), path: p, depth: parent.depth + 1, isDir: true, size: d.folders[p], children: [], parent, counts: zero() };
    parent.children.push(node);
    byPath.set(p, node);
    return node;
  };
  for (const e of d.entries) {
    if (e.path === '/') {
      root.entry = e;
      continue;
    }
    const node = ensure(e.path);
    node.entry = e;
    node.isDir = e.type === 'dir';
    for (let n: TreeNode | null = node; n; n = n.parent) n.counts[e.change]++;
  }
  const sort = (n: TreeNode): void => {
    n.children.sort((a, b) => (a.isDir !== b.isDir ? (a.isDir ? -1 : 1) : a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const c of n.children) if (c.children.length) sort(c);
  };
  sort(root);
  return root;
}

export function totalChanges(n: TreeNode): number {
  return n.counts.added + n.counts.removed + n.counts.modified + n.counts.metadata;
}

/** Bytes the node grows (negative: shrinks) from the old tree to the new. */
export function sizeDelta(n: TreeNode): number | null {
  if (n.isDir) {
    if (!n.size) return null;
    return (n.size.newSize ?? 0) - (n.size.oldSize ?? 0);
  }
  const e = n.entry;
  if (!e) return null;
  return (e.newSize ?? 0) - (e.oldSize ?? 0);
}

export interface RowFilter {
  /** Case-insensitive substring of the path. */
  text: string;
  kinds: Set<ChangeKind>;
}

function passesKinds(n: TreeNode, kinds: Set<ChangeKind>): boolean {
  if (n.entry) return kinds.has(n.entry.change);
  return false;
}

/**
 * The rows to show: children of expanded folders, depth first. With a filter,
 * the matching entries and the folders leading to them, all opened.
 */
export function visibleRows(root: TreeNode, expanded: Set<string>, filter: RowFilter): Row[] {
  const rows: Row[] = [];
  const text = filter.text.trim().toLowerCase();
  const allKinds = filter.kinds.size === 4;
  if (!text && allKinds) {
    const walk = (n: TreeNode): void => {
      for (const c of n.children) {
        const open = expanded.has(c.path);
        rows.push({ node: c, expanded: open });
        if (open) walk(c);
      }
    };
    walk(root);
    return rows;
  }
  // Which nodes match, and which lead to a match.
  const keep = new Set<TreeNode>();
  const mark = (n: TreeNode): boolean => {
    let any = false;
    for (const c of n.children) if (mark(c)) any = true;
    const self = passesKinds(n, filter.kinds) && (!text || n.path.toLowerCase().includes(text));
    if (self || any) keep.add(n);
    return self || any;
  };
  mark(root);
  const walk = (n: TreeNode): void => {
    for (const c of n.children) {
      if (!keep.has(c)) continue;
      const leadsOn = c.children.some((x) => keep.has(x));
      const open = leadsOn && !expanded.has(`!${c.path}`);
      rows.push({ node: c, expanded: open });
      if (open) walk(c);
    }
  };
  walk(root);
  return rows;
}
