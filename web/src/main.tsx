// The dashboard's shell: finds out whether it serves one machine (`strata ui`)
// or a fleet, signs in when the fleet needs a token, and routes pages.

import { type ComponentChildren, render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { Api, ApiError, type RepoInfo } from './api.js';
import { DiffPage } from './pages/diff.js';
import { DeploymentsPage } from './pages/deployments.js';
import { href, useRoute } from './router.js';
import './styles.css';

const TOKEN_KEY = 'strata.token';

function App() {
  const route = useRoute();
  const [token, setToken] = useState<string | null>(() => sessionStorage.getItem(TOKEN_KEY));
  const api = useMemo(() => new Api('', token), [token]);
  const [info, setInfo] = useState<RepoInfo | 'sign-in' | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    api.repoInfo().then(setInfo, (e: unknown) => {
      if (e instanceof ApiError && e.status === 401) setInfo('sign-in');
      else setError((e as Error).message);
    });
  }, [api]);

  if (error) return <Shell nav={[]}><p role="alert" class="error">{error}</p></Shell>;
  if (!info) return <Shell nav={[]}><p role="status" class="muted">Loading…</p></Shell>;
  if (info === 'sign-in') return <Shell nav={[]}><p>Sign-in is needed.</p></Shell>;

  const page = route.path[0] ?? (info.sysroot ? 'deployments' : 'diff');
  const nav: [string, string][] = info.sysroot ? [['deployments', 'Deployments'], ['diff', 'Tree diff']] : [['diff', 'Tree diff']];
  return (
    <Shell nav={nav} current={page} subtitle={info.mode === 'machine' ? `this machine · ${info.repo}` : 'fleet'}>
      {page === 'deployments' && info.sysroot && <DeploymentsPage api={api} />}
      {page === 'diff' && <DiffPage api={api} from={route.query.get('from') ?? undefined} to={route.query.get('to') ?? undefined} />}
    </Shell>
  );
}

function Shell(props: { nav: [string, string][]; current?: string; subtitle?: string; children: ComponentChildren; right?: ComponentChildren }) {
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">strata</span>
        {props.subtitle && <span class="muted sub">{props.subtitle}</span>}
        <nav aria-label="Pages">
          <ul>
            {props.nav.map(([p, label]) => (
              <li key={p}>
                <a href={href(p)} aria-current={props.current === p ? 'page' : undefined}>
                  {label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        {props.right}
      </header>
      <main id="main" tabIndex={-1}>
        {props.children}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
