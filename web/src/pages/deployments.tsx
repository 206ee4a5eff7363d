// One machine (`strata ui --sysroot`): its deployments, which is booted, the
// default and the rollback, and a link to diff any of them against the booted one.

import { useEffect, useState } from 'preact/hooks';
import type { Api, DeploymentStatus, SysrootStatus } from '../api.js';
import { formatTime, short } from '../format.js';
import { href } from '../router.js';

function flags(d: DeploymentStatus): string[] {
  const f: string[] = [];
  if (d.booted) f.push('booted');
  if (d.default) f.push('default');
  if (d.pending) f.push('pending reboot');
  if (d.rollback) f.push('rollback');
  if (d.staged) f.push('staged');
  if (d.pinned) f.push('pinned');
  if (d.bad) f.push(`bad${d.badReason ? `: ${d.badReason}` : ''}`);
  return f;
}

function healthText(h: unknown): string {
  if (!h) return '—';
  if (typeof h === 'string') return h;
  const o = h as { blessed?: boolean; ok?: boolean; state?: string; failed?: string[] };
  if (o.state) return o.state;
  if (o.blessed) return 'blessed';
  if (o.ok === true) return 'healthy';
  if (o.ok === false) return `failed${o.failed?.length ? ` (${o.failed.join(', ')})` : ''}`;
  return JSON.stringify(h);
}

export function DeploymentsPage(props: { api: Api }) {
  const [st, setSt] = useState<SysrootStatus | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    props.api.sysrootStatus().then(setSt, (e: Error) => setError(e.message));
  }, [props.api]);
  if (error) return <p role="alert" class="error">{error}</p>;
  if (!st) return <p role="status" class="muted">Reading the sysroot…</p>;
  const booted = st.deployments.find((d) => d.booted) ?? st.deployments.find((d) => d.default);
  return (
    <section aria-labelledby="dep-title">
      <h1 id="dep-title">Deployments</h1>
      <p class="muted">
        Sysroot <code>{st.sysroot}</code>; {st.deployments.length} deployments.
      </p>
      <table class="grid" aria-label="Deployments">
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">Version</th>
            <th scope="col">Commit</th>
            <th scope="col">State</th>
            <th scope="col">Health</th>
            <th scope="col">Origin</th>
            <th scope="col">Committed</th>
            <th scope="col">
              <span class="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {st.deployments.map((d) => (
            <tr key={`${d.checksum}.${d.serial}`} data-commit={d.checksum} class={d.booted ? 'booted' : ''}>
              <td>{d.index ?? 'staged'}</td>
              <td>{d.version ?? '—'}</td>
              <td>
                <code title={d.checksum}>{short(d.checksum)}</code>
              </td>
              <td>
                {flags(d).map((f) => (
                  <span key={f} class={`badge b-${f.split(/[ :]/)[0]}`}>
                    {f}
                  </span>
                ))}
              </td>
              <td>{healthText(d.health)}</td>
              <td>{d.origin ?? '—'}</td>
              <td>{formatTime(d.timestamp)}</td>
              <td>
                {booted && booted.checksum !== d.checksum && (
                  <a href={href('diff', { from: booted.checksum, to: d.checksum })}>
                    Diff against booted<span class="sr-only"> ({short(d.checksum)})</span>
                  </a>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
