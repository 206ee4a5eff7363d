// The tree diff: two commits side by side as one collapsible tree of what
// changed, with sizes per folder, a filter, text diffs of changed files and
// the package-level change. Rows are virtualised: only those in view exist
// in the DOM, so rootfs-sized diffs (thousands of changes) stay responsive.

import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { Api, ChangeKind, DiffEntry, PackageDiff, RepoCommit, RepoDiff, RepoFile } from '../api.js';
import { ApiError } from '../api.js';
import { type Row, type TreeNode, buildTree, sizeDelta, totalChanges, visibleRows } from '../diff-tree.js';
import { formatBytes, formatDelta, formatMode, short } from '../format.js';
import { diffLines, splitLines, toHunks } from '../line-diff.js';
import { navigate } from '../router.js';

const KINDS: { kind: ChangeKind; label: string; mark: string }[] = [
  { kind: 'added', label: 'added', mark: '+' },
  { kind: 'removed', label: 'removed', mark: '−' },
  { kind: 'modified', label: 'modified', mark: '~' },
  { kind: 'metadata', label: 'permissions', mark: '±' },
];
const MARK: Record<ChangeKind, string> = { added: '+ A', removed: '− D', modified: '~ M', metadata: '± P' };
const ROW_HEIGHT = 28;

export interface CommitChoice {
  /** What the API takes: a commit checksum. */
  commit: string;
  label: string;
}

/** Commits to pick from: each ref's history, plus whatever the caller adds (fleet releases). */
async function loadChoices(api: Api, extra: CommitChoice[]): Promise<CommitChoice[]> {
  const refs = await api.refs();
  const seen = new Set<string>();
  const out: CommitChoice[] = [];
  for (const c of extra) {
    if (!seen.has(c.commit)) out.push(c), seen.add(c.commit);
  }
  for (const r of refs) {
    let commits: RepoCommit[] = [];
    try {
      commits = await api.log(r.name, 50);
    } catch {
      commits = [{ commit: r.commit, subject: r.subject, version: r.version, timestamp: r.timestamp, parent: null }];
    }
    for (const c of commits) {
      if (seen.has(c.commit)) continue;
      seen.add(c.commit);
      out.push({ commit: c.commit, label: `${c.version ?? short(c.commit)} — ${c.subject || '(no subject)'} (${r.name}, ${short(c.commit)})` });
    }
  }
  return out;
}

export function DiffPage(props: { api: Api; from?: string; to?: string; extraChoices?: CommitChoice[] }) {
  const { api } = props;
  const [choices, setChoices] = useState<CommitChoice[] | null>(null);
  const [from, setFrom] = useState(props.from ?? '');
  const [to, setTo] = useState(props.to ?? '');
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    loadChoices(api, props.extraChoices ?? [])
      .then((c) => {
        if (!live) return;
        setChoices(c);
        // Default: the newest commit against its parent.
        if (!props.from && !props.to && c.length >= 2) {
          setTo(c[0].commit);
          setFrom(c[1].commit);
        }
      })
      .catch((e: unknown) => live && setError(String((e as Error).message)));
    return () => {
      live = false;
    };
  }, [api, props.extraChoices]);

  useEffect(() => {
    if (props.from) setFrom(props.from);
    if (props.to) setTo(props.to);
  }, [props.from, props.to]);

  const compare = (e: Event) => {
    e.preventDefault();
    if (from && to) navigate('diff', { from, to });
  };

  return (
    <section aria-labelledby="diff-title">
      <h1 id="diff-title">Tree diff</h1>
      <form class="picker" onSubmit={compare}>
        <CommitSelect id="diff-from" label="From" value={from} choices={choices} onChange={setFrom} />
        <CommitSelect id="diff-to" label="To" value={to} choices={choices} onChange={setTo} />
        <button type="submit" class="primary" disabled={!from || !to}>
          Compare
        </button>
      </form>
      {error && <p role="alert" class="error">{error}</p>}
      {props.from && props.to && <DiffView api={api} from={props.from} to={props.to} />}
    </section>
  );
}

function CommitSelect(props: { id: string; label: string; value: string; choices: CommitChoice[] | null; onChange: (v: string) => void }) {
  const known = props.choices?.some((c) => c.commit === props.value);
  return (
    <label for={props.id} class="field">
      <span>{props.label}</span>
      <select id={props.id} value={props.value} onChange={(e) => props.onChange((e.target as HTMLSelectElement).value)} disabled={!props.choices}>
        {!props.choices && <option value="">Loading commits…</option>}
        {props.value && !known && <option value={props.value}>{short(props.value)}</option>}
        {props.choices?.map((c) => (
          <option key={c.commit} value={c.commit}>
            {c.label}
          </option>
        ))}
      </select>
    </label>
  );
}

function DiffView(props: { api: Api; from: string; to: string }) {
  const { api, from, to } = props;
  const [diff, setDiff] = useState<{ data: RepoDiff; received: number } | null>(null);
  const [pkgs, setPkgs] = useState<PackageDiff | { missing: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [selected, setSelected] = useState<TreeNode | null>(null);

  useEffect(() => {
    let live = true;
    setDiff(null);
    setPkgs(null);
    setSelected(null);
    setError(null);
    api
      .diff(from, to)
      .then((d) => live && setDiff({ data: d, received: performance.now() }))
      .catch((e: unknown) => live && setError((e as Error).message));
    api
      .packagesDiff(from, to)
      .then((p) => live && setPkgs(p))
      .catch((e: unknown) => live && setPkgs({ missing: e instanceof ApiError && e.code === 'PATH_NOT_FOUND' ? 'These trees have no dpkg database.' : (e as Error).message }));
    return () => {
      live = false;
    };
  }, [api, from, to]);

  if (error) return <p role="alert" class="error">{error}</p>;
  if (!diff) return <p role="status" class="muted">Computing the diff…</p>;
  const s = diff.data.summary;
  return (
    <div class="diff-layout">
      <p class="summary" role="status">
        <strong>{short(diff.data.from)}</strong> → <strong>{short(diff.data.to)}</strong>: <span class="k-added">{s.added} added</span>,{' '}
        <span class="k-removed">{s.removed} removed</span>, <span class="k-modified">{s.modified} modified</span>,{' '}
        <span class="k-metadata">{s.metadata} permission changes</span>; +{formatBytes(s.bytesAdded)} −{formatBytes(s.bytesRemoved)}
      </p>
      <Packages pkgs={pkgs} />
      <div class="diff-panes">
        <DiffTree diff={diff.data} received={diff.received} onOpen={setSelected} />
        <EntryDetail api={api} from={diff.data.from} to={diff.data.to} node={selected} />
      </div>
    </div>
  );
}

function Packages(props: { pkgs: PackageDiff | { missing: string } | null }) {
  const p = props.pkgs;
  if (!p) return <p class="muted">Reading the package databases…</p>;
  if ('missing' in p) return <p class="muted">Packages: {p.missing}</p>;
  const count = p.upgraded.length + p.downgraded.length + p.added.length + p.removed.length;
  return (
    <details class="packages" open={count > 0 && count <= 80}>
      <summary>
        <h2>Packages</h2>: {p.upgraded.length} upgraded, {p.downgraded.length} downgraded, {p.added.length} added, {p.removed.length} removed, {p.unchanged} unchanged
      </summary>
      <div class="scroll" tabIndex={0} role="region" aria-label="Package changes, scrollable">
      <table class="grid" aria-label="Package changes">
        <thead>
          <tr>
            <th scope="col">Change</th>
            <th scope="col">Package</th>
            <th scope="col">From</th>
            <th scope="col">To</th>
          </tr>
        </thead>
        <tbody>
          {[
            ...p.upgraded.map((x) => ({ x, kind: 'k-modified', label: '↑ upgraded', from: x.from, to: x.to })),
            ...p.downgraded.map((x) => ({ x, kind: 'k-removed', label: '↓ downgraded', from: x.from, to: x.to })),
            ...p.added.map((x) => ({ x, kind: 'k-added', label: '+ added', from: '', to: x.version })),
            ...p.removed.map((x) => ({ x, kind: 'k-removed', label: '− removed', from: x.version, to: '' })),
          ].map((r) => (
            <tr key={`${r.label}${r.x.name}:${r.x.architecture}`} data-package={r.x.name}>
              <td class={r.kind}>{r.label}</td>
              <td>{r.x.name}</td>
              <td>{r.from}</td>
              <td>{r.to}</td>
            </tr>
          ))}
        </tbody>
      </table>
      </div>
    </details>
  );
}

function DiffTree(props: { diff: RepoDiff; received: number; onOpen: (n: TreeNode) => void }) {
  const root = useMemo(() => buildTree(props.diff), [props.diff]);
  const [expanded, setExpanded] = useState<Set<string>>(() => new Set());
  const [text, setText] = useState('');
  const [kinds, setKinds] = useState<Set<ChangeKind>>(() => new Set(KINDS.map((k) => k.kind)));
  const rows = useMemo(() => visibleRows(root, expanded, { text, kinds }), [root, expanded, text, kinds]);
  const filtering = text.trim() !== '' || kinds.size !== 4;
  const [active, setActive] = useState(0);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(560);
  const box = useRef<HTMLDivElement>(null);

  // How long the first rows took to reach the screen after the data arrived (read by the browser test).
  useLayoutEffect(() => {
    requestAnimationFrame(() => {
      if (box.current) box.current.dataset.renderMs = String(Math.round(performance.now() - props.received));
    });
  }, [props.diff]);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  useEffect(() => {
    if (active >= rows.length) setActive(Math.max(0, rows.length - 1));
  }, [rows.length]);

  const toggle = (n: TreeNode) => {
    const key = filtering ? `!${n.path}` : n.path;
    setExpanded((old) => {
      const next = new Set(old);
      if (next.has(key)) next.delete(key);
      else next.add(key);
      return next;
    });
  };

  const activate = (i: number) => {
    const r = rows[i];
    if (!r) return;
    if (r.node.isDir && r.node.children.length) toggle(r.node);
    props.onOpen(r.node);
  };

  const focusRow = (i: number) => {
    const n = Math.max(0, Math.min(rows.length - 1, i));
    setActive(n);
    const el = box.current;
    if (!el) return;
    const top = n * ROW_HEIGHT;
    if (top < el.scrollTop) el.scrollTop = top;
    else if (top + ROW_HEIGHT > el.scrollTop + el.clientHeight) el.scrollTop = top + ROW_HEIGHT - el.clientHeight;
  };

  const onKey = (e: KeyboardEvent) => {
    const r = rows[active];
    const page = Math.max(1, Math.floor(height / ROW_HEIGHT) - 1);
    switch (e.key) {
      case 'ArrowDown':
        focusRow(active + 1);
        break;
      case 'ArrowUp':
        focusRow(active - 1);
        break;
      case 'PageDown':
        focusRow(active + page);
        break;
      case 'PageUp':
        focusRow(active - page);
        break;
      case 'Home':
        focusRow(0);
        break;
      case 'End':
        focusRow(rows.length - 1);
        break;
      case 'ArrowRight':
        if (r?.node.isDir && r.node.children.length && !r.expanded) toggle(r.node);
        else if (r?.expanded) focusRow(active + 1);
        break;
      case 'ArrowLeft':
        if (r?.expanded) toggle(r.node);
        else if (r?.node.parent && r.node.parent.path !== '/') focusRow(rows.findIndex((x) => x.node === r.node.parent));
        break;
      case 'Enter':
      case ' ':
        activate(active);
        break;
      default:
        return;
    }
    e.preventDefault();
  };

  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - 10);
  const last = Math.min(rows.length, Math.ceil((scrollTop + height) / ROW_HEIGHT) + 10);
  const shown: Row[] = rows.slice(first, last);

  return (
    <div class="tree-pane">
      <div class="tree-tools">
        <label for="tree-filter" class="field">
          <span>Filter paths</span>
          <input id="tree-filter" type="search" value={text} placeholder="e.g. etc/ or .conf" onInput={(e) => setText((e.target as HTMLInputElement).value)} />
        </label>
        <fieldset class="kinds">
          <legend>Show</legend>
          {KINDS.map((k) => (
            <label key={k.kind} class={`k-${k.kind}`}>
              <input
                type="checkbox"
                checked={kinds.has(k.kind)}
                onChange={() =>
                  setKinds((old) => {
                    const next = new Set(old);
                    if (next.has(k.kind)) next.delete(k.kind);
                    else next.add(k.kind);
                    return next;
                  })
                }
              />{' '}
              {k.mark} {k.label}
            </label>
          ))}
        </fieldset>
        <p class="muted" aria-live="polite">
          {rows.length} rows{filtering ? ' match' : ''}
        </p>
      </div>
      <div class="tree-head" aria-hidden="true">
        <span class="c-mark">Change</span>
        <span class="c-name">Path</span>
        <span class="c-num">Changes</span>
        <span class="c-num">Old size</span>
        <span class="c-num">New size</span>
        <span class="c-num">Size change</span>
      </div>
      <div
        ref={box}
        class="tree"
        role="tree"
        aria-label="Changed files and folders"
        tabIndex={0}
        aria-activedescendant={rows.length ? `tree-row-${active}` : undefined}
        onKeyDown={onKey}
        onScroll={(e) => setScrollTop((e.target as HTMLDivElement).scrollTop)}
        data-rows={rows.length}
      >
        <div style={{ height: `${rows.length * ROW_HEIGHT}px`, position: 'relative' }}>
          {shown.map((r, k) => {
            const i = first + k;
            return <TreeRow key={r.node.path} row={r} index={i} active={i === active} onClick={() => (setActive(i), activate(i))} />;
          })}
        </div>
      </div>
    </div>
  );
}

function TreeRow(props: { row: Row; index: number; active: boolean; onClick: () => void }) {
  const { node, expanded } = props.row;
  const e = node.entry;
  const kind = e?.change;
  const delta = sizeDelta(node);
  const oldSize = node.isDir ? node.size?.oldSize : e?.oldSize;
  const newSize = node.isDir ? node.size?.newSize : e?.newSize;
  const changes = totalChanges(node);
  return (
    <div
      id={`tree-row-${props.index}`}
      role="treeitem"
      aria-level={node.depth}
      aria-expanded={node.isDir && node.children.length ? expanded : undefined}
      aria-selected={props.active}
      class={`row${props.active ? ' active' : ''}${kind ? ` k-${kind}` : ''}`}
      style={{ top: `${props.index * ROW_HEIGHT}px` }}
      data-path={node.path}
      onClick={props.onClick}
    >
      <span class="c-mark">{kind ? MARK[kind] : ''}</span>
      <span class="c-name" style={{ paddingLeft: `${(node.depth - 1) * 16}px` }}>
        <span class="twisty" aria-hidden="true">
          {node.isDir && node.children.length ? (expanded ? '▾' : '▸') : ''}
        </span>
        {node.name}
        {node.isDir ? '/' : ''}
        {e?.type === 'symlink' && <span class="muted"> → {e.newTarget ?? e.oldTarget}</span>}
        <span class="sr-only">{kind ? `, ${kind === 'metadata' ? 'permissions changed' : kind}` : ''}</span>
      </span>
      <span class="c-num">{node.isDir ? changes : ''}</span>
      <span class="c-num">{oldSize == null ? '' : formatBytes(oldSize)}</span>
      <span class="c-num">{newSize == null ? '' : formatBytes(newSize)}</span>
      <span class={`c-num ${delta && delta > 0 ? 'grow' : delta && delta < 0 ? 'shrink' : ''}`}>{formatDelta(delta)}</span>
    </div>
  );
}

function EntryDetail(props: { api: Api; from: string; to: string; node: TreeNode | null }) {
  const n = props.node;
  if (!n) {
    return (
      <aside class="detail" aria-label="Details">
        <p class="muted">Select a file (click, or arrow keys and Enter in the tree) to see what changed in it.</p>
      </aside>
    );
  }
  const e = n.entry;
  return (
    <aside class="detail" aria-label="Details">
      <h2 class="path">{n.path}</h2>
      {!e && <p>Unchanged folder holding {totalChanges(n)} changes.</p>}
      {e && <EntryFacts e={e} />}
      {n.isDir && n.size && (
        <p>
          Folder size: {n.size.oldSize == null ? 'absent' : formatBytes(n.size.oldSize)} → {n.size.newSize == null ? 'absent' : formatBytes(n.size.newSize)} ({formatDelta(sizeDelta(n))})
        </p>
      )}
      {e && e.type === 'file' && e.change !== 'metadata' && <TextDiff api={props.api} from={props.from} to={props.to} e={e} />}
    </aside>
  );
}

function EntryFacts(props: { e: DiffEntry }) {
  const e = props.e;
  const rows: [string, string][] = [['Change', e.change === 'metadata' ? 'permissions / owner / xattrs' : e.change]];
  rows.push(['Type', e.oldType && e.oldType !== e.type ? `${e.oldType} → ${e.type}` : e.type]);
  if (e.oldSize !== undefined || e.newSize !== undefined) rows.push(['Size', `${e.oldSize === undefined ? '—' : formatBytes(e.oldSize)} → ${e.newSize === undefined ? '—' : formatBytes(e.newSize)}`]);
  if (e.oldMode !== e.newMode) rows.push(['Mode', `${e.oldMode === undefined ? '—' : formatMode(e.oldMode)} → ${e.newMode === undefined ? '—' : formatMode(e.newMode)}`]);
  if (e.oldOwner !== e.newOwner) rows.push(['Owner', `${e.oldOwner ?? '—'} → ${e.newOwner ?? '—'}`]);
  if (e.oldTarget !== e.newTarget) rows.push(['Link target', `${e.oldTarget ?? '—'} → ${e.newTarget ?? '—'}`]);
  return (
    <dl class="facts">
      {rows.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

type Side = RepoFile | null;

function TextDiff(props: { api: Api; from: string; to: string; e: DiffEntry }) {
  const { api, from, to, e } = props;
  const [sides, setSides] = useState<{ a: Side; b: Side } | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    setSides(null);
    setError(null);
    const get = (commit: string, present: boolean) => (present ? api.file(commit, e.path) : Promise.resolve(null));
    Promise.all([get(from, e.change !== 'added'), get(to, e.change !== 'removed')])
      .then(([a, b]) => live && setSides({ a, b }))
      .catch((x: unknown) => live && setError((x as Error).message));
    return () => {
      live = false;
    };
  }, [api, from, to, e.path, e.change]);
  const hunks = useMemo(() => {
    if (!sides) return null;
    const { a, b } = sides;
    if ((a && a.text === null) || (b && b.text === null)) return null;
    return toHunks(diffLines(splitLines(a?.text ?? ''), splitLines(b?.text ?? '')));
  }, [sides]);
  if (error) return <p role="alert" class="error">{error}</p>;
  if (!sides) return <p class="muted">Loading the file…</p>;
  const why = [sides.a, sides.b].find((s) => s && s.text === null)?.reason;
  if (!hunks) return <p class="muted">No text diff: the file is {why === 'too-large' ? 'too large to show' : why === 'binary' ? 'binary' : 'not a regular file'}.</p>;
  if (!hunks.length) return <p class="muted">The content is the same.</p>;
  return (
    <table class="textdiff" aria-label={`Line changes in ${e.path}`}>
      <thead>
        <tr>
          <th scope="col">Old</th>
          <th scope="col">New</th>
          <th scope="col">
            <span class="sr-only">Change</span>
          </th>
          <th scope="col">Line</th>
        </tr>
      </thead>
      {hunks.map((h, i) => (
        <tbody key={i}>
          <tr class="hunk">
            <td colSpan={4}>
              @@ −{h.oldStart} +{h.newStart} @@
            </td>
          </tr>
          {h.ops.map((o, j) => (
            <tr key={j} class={`l-${o.kind}`}>
              <td class="ln">{o.kind !== 'add' ? o.oldLine : ''}</td>
              <td class="ln">{o.kind !== 'del' ? o.newLine : ''}</td>
              <td class="op">
                {o.kind === 'add' ? '+' : o.kind === 'del' ? '−' : ' '}
                <span class="sr-only">{o.kind === 'add' ? 'added' : o.kind === 'del' ? 'removed' : ''}</span>
              </td>
              <td class="text">{o.text}</td>
            </tr>
          ))}
        </tbody>
      ))}
    </table>
  );
}
