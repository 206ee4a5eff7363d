// The fleet pages: sign-in, overview, rollouts, a device, the audit log.
// Viewers see everything but no action buttons (the API refuses them too);
// every action asks first, saying exactly which devices move from what to what.

import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, type AuditEntry, type Device, type DeviceDetail, type FleetApi, type Release, type Rollout, type RolloutAction, type Whoami } from '../api.js';
import { formatTime, short } from '../format.js';
import { href, navigate } from '../router.js';

/** Loads now and every `ms` (live refresh); `reload` loads at once. */
function usePoll<T>(load: () => Promise<T>, ms: number, deps: unknown[]): { data: T | null; error: string | null; reload: () => void } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    const run = () =>
      load().then(
        (d) => live && (setData(d), setError(null)),
        (e: unknown) => live && setError((e as Error).message),
      );
    void run();
    const t = ms > 0 ? setInterval(run, ms) : undefined;
    return () => {
      live = false;
      if (t) clearInterval(t);
    };
  }, [...deps, tick]);
  return { data, error, reload: () => setTick((n) => n + 1) };
}

export function SignIn(props: { api: FleetApi; onSignedIn: (token: string, who: Whoami) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    props.api.token = token.trim();
    try {
      const who = await props.api.whoami();
      props.onSignedIn(token.trim(), who);
    } catch (err) {
      props.api.token = null;
      setError(err instanceof ApiError && err.status === 401 ? 'That token is not known to this server.' : (err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="signin" onSubmit={submit} aria-labelledby="signin-title">
      <h1 id="signin-title">Sign in</h1>
      <p class="muted">Paste an admin or viewer token (made with <code>strata fleet token create NAME --role admin|viewer</code>). It is kept for this tab only.</p>
      <label class="field" for="token">
        <span>Token</span>
        <input id="token" type="password" autoComplete="off" value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} required />
      </label>
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      <button type="submit" class="primary" disabled={busy || !token.trim()}>
        Sign in
      </button>
    </form>
  );
}

function Counts(props: { title: string; counts: Record<string, number> }) {
  const entries = Object.entries(props.counts).sort((a, b) => b[1] - a[1]);
  return (
    <section aria-label={props.title}>
      <h2>{props.title}</h2>
      <table class="grid">
        <tbody>
          {entries.map(([k, n]) => (
            <tr key={k}>
              <th scope="row">{k}</th>
              <td class="c-num">{n}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function OverviewPage(props: { api: FleetApi; label?: string }) {
  const { api } = props;
  const [label, setLabel] = useState(props.label ?? '');
  const [state, setState] = useState('');
  const ov = usePoll(() => api.overview(), 5000, [api]);
  const devs = usePoll(() => api.devices({ label: /=/.test(label) ? label : undefined, state: state || undefined }), 5000, [api, label, state]);
  const o = ov.data;
  return (
    <section aria-labelledby="ov-title">
      <h1 id="ov-title">Fleet overview</h1>
      {ov.error && <p role="alert" class="error">{ov.error}</p>}
      {o && (
        <>
          <ul class="cards" aria-label="Device counts">
            {(['devices', 'healthy', 'updating', 'failed', 'drifting', 'offline'] as const).map((k) => (
              <li key={k} class={`card ${k}`} data-count={k}>
                <span class="n">{o[k]}</span> {k}
              </li>
            ))}
          </ul>
          <div class="cols">
            <Counts title="By version" counts={o.byVersion} />
            <Counts title="By channel" counts={o.byChannel} />
            <Counts title="By group" counts={o.byGroup} />
            <Counts title="By state" counts={o.byState} />
          </div>
        </>
      )}
      <h2>Devices</h2>
      <div class="toolbar">
        <label class="field" for="label-filter">
          <span>Label (key=value)</span>
          <input id="label-filter" type="text" value={label} placeholder="site=lyon" onInput={(e) => setLabel((e.target as HTMLInputElement).value)} />
        </label>
        <label class="field" for="state-filter">
          <span>State</span>
          <select id="state-filter" value={state} onChange={(e) => setState((e.target as HTMLSelectElement).value)}>
            <option value="">any</option>
            {['checking', 'downloading', 'staged', 'rebooting', 'booted', 'healthy', 'unhealthy', 'rolled-back'].map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <p class="muted" aria-live="polite">
          {devs.data ? `${devs.data.length} devices` : 'Loading…'} · refreshes every 5 s
        </p>
      </div>
      {devs.error && <p role="alert" class="error">{devs.error}</p>}
      {devs.data && <DeviceTable devices={devs.data} />}
    </section>
  );
}

function DeviceTable(props: { devices: Device[] }) {
  return (
    <table class="grid" aria-label="Devices">
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Group</th>
          <th scope="col">Version</th>
          <th scope="col">State</th>
          <th scope="col">Labels</th>
          <th scope="col">Last seen</th>
        </tr>
      </thead>
      <tbody>
        {props.devices.map((d) => (
          <tr key={d.id} data-device={d.name}>
            <td>
              <a href={href(`devices/${d.id}`)}>{d.name}</a>
            </td>
            <td>{d.group}</td>
            <td>{d.booted.version ?? short(d.booted.commit)}</td>
            <td>
              <span class={`badge b-${d.state ?? 'unknown'}`}>{d.state ?? 'unknown'}</span>
              {d.overrideCommit && <span class="badge b-bad">rolling back</span>}
            </td>
            <td>
              {Object.entries(d.labels).map(([k, v]) => (
                <span key={k} class="badge">
                  {k}={v}
                </span>
              ))}
            </td>
            <td>{formatTime(d.lastSeen)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** A modal that says what will happen; Cancel has the focus first. */
function Confirm(props: { title: string; children: ComponentChildren; confirm: string; danger?: boolean; onConfirm: () => Promise<void>; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const cancel = useRef<HTMLButtonElement>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    ref.current?.showModal();
    cancel.current?.focus();
  }, []);
  const go = async () => {
    setBusy(true);
    try {
      await props.onConfirm();
      ref.current?.close();
      props.onClose();
    } catch (e) {
      setError((e as Error).message);
      setBusy(false);
    }
  };
  return (
    <dialog ref={ref} aria-labelledby="confirm-title" onClose={props.onClose}>
      <h2 id="confirm-title">{props.title}</h2>
      <div class="confirm-body">{props.children}</div>
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      <div class="actions">
        <button ref={cancel} type="button" onClick={() => (ref.current?.close(), props.onClose())}>
          Cancel
        </button>
        <button type="button" class={props.danger ? 'danger' : 'primary'} disabled={busy} onClick={go}>
          {props.confirm}
        </button>
      </div>
    </dialog>
  );
}

export function RolloutsPage(props: { api: FleetApi }) {
  const r = usePoll(() => props.api.rollouts(), 5000, [props.api]);
  return (
    <section aria-labelledby="ro-title">
      <h1 id="ro-title">Rollouts</h1>
      {r.error && <p role="alert" class="error">{r.error}</p>}
      {r.data && (
        <table class="grid" aria-label="Rollouts">
          <thead>
            <tr>
              <th scope="col">Rollout</th>
              <th scope="col">Group</th>
              <th scope="col">Version</th>
              <th scope="col">State</th>
              <th scope="col">Wave</th>
              <th scope="col">Started</th>
            </tr>
          </thead>
          <tbody>
            {r.data.map((x) => (
              <tr key={x.id} data-rollout={x.id}>
                <td>
                  <a href={href(`rollouts/${x.id}`)}>{x.id}</a>
                  {x.kind === 'rollback' ? ' (rollback)' : ''}
                </td>
                <td>{x.group}</td>
                <td>{x.version}</td>
                <td>
                  <span class={`badge b-${x.state}`}>{x.state}</span>
                </td>
                <td>
                  {Math.min(x.currentWave + 1, x.waves.length)} of {x.waves.length}
                </td>
                <td>{formatTime(x.createdAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** Failure rate over time against the threshold, as a small SVG line chart. */
export function FailureChart(props: { history: { at: string; rate: number }[]; threshold: number }) {
  const W = 480;
  const H = 160;
  const pad = { l: 40, r: 10, t: 10, b: 24 };
  const pts = props.history.map((p) => ({ t: Date.parse(p.at), rate: p.rate }));
  const maxRate = Math.max(props.threshold * 1.5, ...pts.map((p) => p.rate), 0.01);
  const t0 = pts.length ? pts[0].t : 0;
  const t1 = pts.length > 1 ? pts[pts.length - 1].t : t0 + 1;
  const x = (t: number) => pad.l + ((t - t0) / (t1 - t0 || 1)) * (W - pad.l - pad.r);
  const y = (r: number) => H - pad.b - (r / maxRate) * (H - pad.t - pad.b);
  const line = pts.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.rate).toFixed(1)}`).join(' ');
  const last = pts[pts.length - 1];
  const desc = pts.length
    ? `Failure rate ${(last.rate * 100).toFixed(1)}% now, threshold ${(props.threshold * 100).toFixed(1)}%, ${pts.length} measurements.`
    : `No failures measured yet; threshold ${(props.threshold * 100).toFixed(1)}%.`;
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${W} ${H}`} width={W} height={H} role="img" aria-label={desc}>
        <line x1={pad.l} y1={H - pad.b} x2={W - pad.r} y2={H - pad.b} stroke="#57606a" />
        <line x1={pad.l} y1={pad.t} x2={pad.l} y2={H - pad.b} stroke="#57606a" />
        <text x={pad.l - 4} y={y(0) + 4} text-anchor="end" font-size="11" fill="#57606a">0%</text>
        <text x={pad.l - 4} y={y(maxRate) + 8} text-anchor="end" font-size="11" fill="#57606a">{`${Math.round(maxRate * 100)}%`}</text>
        <line x1={pad.l} y1={y(props.threshold)} x2={W - pad.r} y2={y(props.threshold)} stroke="#a40e26" stroke-dasharray="6 4" />
        <text x={W - pad.r} y={y(props.threshold) - 4} text-anchor="end" font-size="11" fill="#a40e26">{`threshold ${(props.threshold * 100).toFixed(0)}%`}</text>
        {pts.length > 0 && <path d={line} fill="none" stroke="#0b57d0" stroke-width="2" />}
        {pts.map((p, i) => (
          <circle key={i} cx={x(p.t)} cy={y(p.rate)} r="3" fill={p.rate > props.threshold ? '#a40e26' : '#0b57d0'} />
        ))}
      </svg>
      <figcaption class="muted">{desc}</figcaption>
    </figure>
  );
}

const ACTION_TEXT: Record<RolloutAction, { label: string; danger: boolean }> = {
  pause: { label: 'Pause', danger: false },
  resume: { label: 'Resume', danger: false },
  abort: { label: 'Abort', danger: true },
  rollback: { label: 'Roll back the group', danger: true },
};

function allowed(r: Rollout): RolloutAction[] {
  if (r.state === 'active') return ['pause', 'abort', 'rollback'];
  if (r.state === 'paused') return ['resume', 'abort', 'rollback'];
  if (r.state === 'completed' || r.state === 'aborted') return ['rollback'];
  return [];
}

export function RolloutPage(props: { api: FleetApi; id: string; who: Whoami }) {
  const { api, id } = props;
  const r = usePoll(() => api.rollout(id), 5000, [api, id]);
  const releases = usePoll(() => api.releases(), 0, [api]);
  const group = r.data?.group;
  const devs = usePoll(() => (group ? api.devices({ group }) : Promise.resolve([] as Device[])), 5000, [api, group]);
  const [asking, setAsking] = useState<RolloutAction | null>(null);
  if (r.error) return <p role="alert" class="error">{r.error}</p>;
  if (!r.data) return <p role="status" class="muted">Loading the rollout…</p>;
  const x = r.data;
  const prev: Release | undefined = releases.data?.find((rel) => rel.id === x.previousReleaseId);
  const devices = devs.data ?? [];
  const onNew = devices.filter((d) => d.booted.commit === x.commit);
  const notYet = devices.filter((d) => d.booted.commit !== x.commit);
  const names = (list: Device[]) => (list.length ? list.map((d) => `${d.name} (${d.booted.version ?? short(d.booted.commit)})`).join(', ') : 'none');

  const explain = (a: RolloutAction) => {
    switch (a) {
      case 'pause':
        return (
          <p>
            Rollout <strong>{x.id}</strong> of version <strong>{x.version}</strong> to group <strong>{x.group}</strong> stops offering the update. {onNew.length} devices already on {x.version} stay there ({names(onNew)}); {notYet.length} devices not yet updated wait ({names(notYet)}) until you resume.
          </p>
        );
      case 'resume':
        return (
          <p>
            Rollout <strong>{x.id}</strong> continues at wave {x.currentWave + 1} of {x.waves.length}: devices of group <strong>{x.group}</strong> not yet updated ({names(notYet)}) move from {prev?.version ?? 'their current version'} to <strong>{x.version}</strong>, at most {x.maxConcurrent} at a time.
          </p>
        );
      case 'abort':
        return (
          <p>
            Rollout <strong>{x.id}</strong> ends for good; it cannot be resumed. The {onNew.length} devices on {x.version} stay there ({names(onNew)}); the other {notYet.length} are not updated ({names(notYet)}).
          </p>
        );
      case 'rollback':
        return (
          <p>
            Group <strong>{x.group}</strong> goes back from <strong>{x.version}</strong> to <strong>{prev ? prev.version : 'its previous release'}</strong>
            {prev ? ` (commit ${short(prev.commit)})` : ''}. The {onNew.length} devices on {x.version} will be offered the older commit and move back: {names(onNew)}.
          </p>
        );
    }
  };

  return (
    <section aria-labelledby="rollout-title">
      <h1 id="rollout-title">
        Rollout {x.id}: {prev ? `${prev.version} → ` : ''}
        {x.version} to group {x.group}
      </h1>
      <p>
        State: <span class={`badge b-${x.state}`} data-state={x.state}>{x.state}</span>
        {x.pausedReason && <span class="muted"> ({x.pausedReason})</span>} · wave {Math.min(x.currentWave + 1, x.waves.length)} of {x.waves.length} · at most {x.maxConcurrent} at a time · failure threshold {(x.failureThreshold * 100).toFixed(0)}%
      </p>
      {props.who.role === 'admin' && (
        <div class="actions" role="group" aria-label="Rollout actions">
          {allowed(x).map((a) => (
            <button key={a} type="button" class={ACTION_TEXT[a].danger ? 'danger' : ''} onClick={() => setAsking(a)}>
              {ACTION_TEXT[a].label}
            </button>
          ))}
        </div>
      )}
      {asking && (
        <Confirm
          title={`${ACTION_TEXT[asking].label}: rollout ${x.id}?`}
          confirm={`${ACTION_TEXT[asking].label} now`}
          danger={ACTION_TEXT[asking].danger}
          onConfirm={async () => {
            await api.rolloutAction(x.id, asking, `from the dashboard by ${props.who.name}`);
            r.reload();
          }}
          onClose={() => setAsking(null)}
        >
          {explain(asking)}
        </Confirm>
      )}
      <h2>Waves</h2>
      {x.waves.map((w, i) => (
        <div class="wave" key={i} data-wave={i}>
          <span>
            Wave {i + 1}: {w.percent}%
          </span>
          <div class="bar" role="img" aria-label={`wave ${i + 1}: ${w.healthy} healthy, ${w.updated} updated, ${w.failed} failed of ${w.devices}`}>
            <span class="healthy" style={{ width: `${w.devices ? (w.healthy / w.devices) * 100 : 0}%` }} />
            <span class="updated" style={{ width: `${w.devices ? (Math.max(0, w.updated - w.healthy - w.failed) / w.devices) * 100 : 0}%` }} />
            <span class="failed" style={{ width: `${w.devices ? (w.failed / w.devices) * 100 : 0}%` }} />
          </div>
          <span>
            {w.healthy}/{w.devices} healthy{w.failed ? `, ${w.failed} failed` : ''}
            {w.completedAt ? ' ✓' : w.startedAt ? '' : ' (not started)'}
          </span>
        </div>
      ))}
      <h2>Failure rate</h2>
      <FailureChart history={x.failureHistory} threshold={x.failureThreshold} />
      <h2>Devices in group {x.group}</h2>
      <DeviceTable devices={devices} />
    </section>
  );
}

function describeAudit(e: AuditEntry): string {
  const show = (v: unknown) => (v === null || v === undefined ? '' : JSON.stringify(v));
  const b = show(e.before);
  const a = show(e.after);
  return b && a ? `${b} → ${a}` : a || b;
}

export function DevicePage(props: { api: FleetApi; id: string; who: Whoami }) {
  const { api, id } = props;
  const d = usePoll(() => api.device(id), 5000, [api, id]);
  const [asking, setAsking] = useState(false);
  if (d.error) return <p role="alert" class="error">{d.error}</p>;
  if (!d.data) return <p role="status" class="muted">Loading the device…</p>;
  const x: DeviceDetail = d.data;
  const deps = x.deployments ?? [];
  const booted = deps.find((p) => p.booted);
  const target = deps.find((p) => p.rollback) ?? deps.find((p) => !p.booted && p.commit !== x.booted.commit);
  return (
    <section aria-labelledby="dev-title">
      <h1 id="dev-title">Device {x.name}</h1>
      <dl class="facts">
        <div>
          <dt>State</dt>
          <dd data-field="state">
            <span class={`badge b-${x.state ?? 'unknown'}`}>{x.state ?? 'unknown'}</span>
            {x.overrideCommit && (
              <span class="badge b-bad" data-field="override">
                rolling back to {deps.find((p) => p.commit === x.overrideCommit)?.version ?? short(x.overrideCommit)}
              </span>
            )}
          </dd>
        </div>
        <div>
          <dt>Running</dt>
          <dd data-field="booted">
            {x.booted.version ?? '—'} (<code>{short(x.booted.commit)}</code>)
          </dd>
        </div>
        <div>
          <dt>Group</dt>
          <dd>{x.group}</dd>
        </div>
        <div>
          <dt>Labels</dt>
          <dd>{Object.entries(x.labels).map(([k, v]) => `${k}=${v}`).join(', ') || '—'}</dd>
        </div>
        <div>
          <dt>Last seen</dt>
          <dd>{formatTime(x.lastSeen)}</dd>
        </div>
        <div>
          <dt>Last verify</dt>
          <dd>{x.verify ? `${x.verify.ok ? 'clean' : `differs: ${x.verify.modified ?? 0} modified, ${x.verify.added ?? 0} added, ${x.verify.removed ?? 0} removed`} (${formatTime(x.verify.at)})` : 'never reported'}</dd>
        </div>
        <div>
          <dt>Last health</dt>
          <dd>{x.health ? `${x.health.ok ? 'healthy' : `failed: ${(x.health.failed ?? []).join(', ')}`} (${formatTime(x.health.at)})` : 'never reported'}</dd>
        </div>
      </dl>
      {props.who.role === 'admin' && target && (
        <div class="actions">
          <button type="button" class="danger" onClick={() => setAsking(true)}>
            Roll back this device
          </button>
        </div>
      )}
      {asking && target && (
        <Confirm
          title={`Roll back ${x.name}?`}
          confirm="Roll back now"
          danger
          onConfirm={async () => {
            await api.rollbackDevice(x.id);
            d.reload();
          }}
          onClose={() => setAsking(false)}
        >
          <p>
            Device <strong>{x.name}</strong> goes back from <strong>{booted?.version ?? x.booted.version ?? short(x.booted.commit)}</strong> (commit {short(booted?.commit ?? x.booted.commit)}, booted) to{' '}
            <strong>{target.version ?? short(target.commit)}</strong> (commit {short(target.commit)}, its {target.rollback ? 'rollback' : 'previous'} deployment). Only this device; its group's rollout is not changed. It is offered that commit on its next poll and stays on it until it reports healthy.
          </p>
        </Confirm>
      )}
      <h2>Deployments</h2>
      <table class="grid" aria-label="Deployments">
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">Version</th>
            <th scope="col">Commit</th>
            <th scope="col">State</th>
            <th scope="col">Health</th>
          </tr>
        </thead>
        <tbody>
          {deps.map((p, i) => (
            <tr key={`${p.commit}${i}`} class={p.booted ? 'booted' : ''}>
              <td>{p.index ?? i}</td>
              <td>{p.version ?? '—'}</td>
              <td>
                <code>{short(p.commit)}</code>
              </td>
              <td>
                {(['booted', 'default', 'rollback', 'pinned', 'staged'] as const)
                  .filter((k) => p[k])
                  .map((k) => (
                    <span key={k} class={`badge b-${k}`}>
                      {k}
                    </span>
                  ))}
              </td>
              <td>{p.health ?? '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {booted && target && (
        <p>
          <a href={href('diff', { from: target.commit, to: booted.commit })}>What changed between its rollback and booted deployments</a>
        </p>
      )}
      <h2>History</h2>
      <ol class="timeline" aria-label="History from the audit log">
        {x.history.map((e) => (
          <li key={e.seq}>
            <strong>{e.action}</strong> <span class="muted">by {e.actor}, {formatTime(e.at)}</span>
            <div class="mono">{describeAudit(e)}</div>
          </li>
        ))}
      </ol>
    </section>
  );
}

export function AuditPage(props: { api: FleetApi; query: URLSearchParams }) {
  const { api } = props;
  const [device, setDevice] = useState(props.query.get('device') ?? '');
  const [action, setAction] = useState(props.query.get('action') ?? '');
  const [since, setSince] = useState('');
  const [until, setUntil] = useState('');
  const toIso = (v: string) => (v ? new Date(v).toISOString() : undefined);
  const list = usePoll(() => api.audit({ device: device || undefined, action: action || undefined, since: toIso(since), until: toIso(until), limit: 500 }), 10000, [api, device, action, since, until]);
  const chain = usePoll(() => api.auditVerify(), 10000, [api]);
  const c = chain.data;
  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">Audit log</h1>
      <p role="status" data-chain={c ? (c.ok ? 'ok' : 'broken') : 'unknown'}>
        {!c && 'Checking the hash chain…'}
        {c && c.ok && <span class="chain-ok">✓ The hash chain verifies: all {c.entries} entries are as written.</span>}
        {c && !c.ok && (
          <span class="chain-bad">
            ✗ The hash chain is broken at entry {c.firstBad?.seq}: {c.firstBad?.reason}. Entries from there on cannot be trusted.
          </span>
        )}
      </p>
      <div class="toolbar">
        <label class="field" for="a-device">
          <span>Device id</span>
          <input id="a-device" type="text" value={device} onInput={(e) => setDevice((e.target as HTMLInputElement).value)} />
        </label>
        <label class="field" for="a-action">
          <span>Action</span>
          <input id="a-action" type="text" value={action} placeholder="rollout.pause" onInput={(e) => setAction((e.target as HTMLInputElement).value)} />
        </label>
        <label class="field" for="a-since">
          <span>Since</span>
          <input id="a-since" type="datetime-local" value={since} onInput={(e) => setSince((e.target as HTMLInputElement).value)} />
        </label>
        <label class="field" for="a-until">
          <span>Until</span>
          <input id="a-until" type="datetime-local" value={until} onInput={(e) => setUntil((e.target as HTMLInputElement).value)} />
        </label>
      </div>
      {list.error && <p role="alert" class="error">{list.error}</p>}
      {list.data && (
        <table class="grid" aria-label="Audit entries">
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">Time</th>
              <th scope="col">Actor</th>
              <th scope="col">Action</th>
              <th scope="col">Subject</th>
              <th scope="col">Change</th>
            </tr>
          </thead>
          <tbody>
            {list.data.map((e) => (
              <tr key={e.seq} data-action={e.action}>
                <td>{e.seq}</td>
                <td>{formatTime(e.at)}</td>
                <td>{e.actor}</td>
                <td>{e.action}</td>
                <td>
                  {e.subject.startsWith('device:') ? <a href={href(`devices/${e.subject.slice(7)}`)}>{e.subject}</a> : e.subject}
                </td>
                <td class="mono">{describeAudit(e)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export { navigate };
