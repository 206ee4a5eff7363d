// The dashboard's shell: finds out whether it serves one machine (`strata ui`)
// or a fleet, signs in when the fleet needs a token, and routes pages.

import { type ComponentChildren, render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, FleetApi, type RepoInfo, type Whoami } from './api.js';
import { type CommitChoice, DiffPage } from './pages/diff.js';
import { DeploymentsPage } from './pages/deployments.js';
import { AuditPage, DevicePage, OverviewPage, RolloutPage, RolloutsPage, SignIn } from './pages/fleet.js';
import { href, useRoute } from './router.js';
import './styles.css';

const TOKEN_KEY = 'strata.token';

function App() {
  const route = useRoute();
  const [token, setToken] = useState<string | null>(() => sessionStorage.getItem(TOKEN_KEY));
  const api = useMemo(() => new FleetApi('', token), [token]);
  const [info, setInfo] = useState<RepoInfo | 'sign-in' | null>(null);
  const [who, setWho] = useState<Whoami | null>(null);
  const [releases, setReleases] = useState<CommitChoice[] | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    setInfo(null);
    api.repoInfo().then(
      (i) => {
        setInfo(i);
        if (i.mode === 'fleet') {
          api.whoami().then(setWho, () => setWho(null));
          api.releases().then(
            (rs) => setReleases(rs.map((r) => ({ commit: r.commit, label: `release ${r.version} (${r.channel}, ${r.commit.slice(0, 12)})` }))),
            () => setReleases([]),
          );
        }
      },
      (e: unknown) => {
        if (e instanceof ApiError && e.status === 401) {
          sessionStorage.removeItem(TOKEN_KEY);
          setInfo('sign-in');
        } else setError((e as Error).message);
      },
    );
  }, [api]);

  const signOut = () => {
    sessionStorage.removeItem(TOKEN_KEY);
    setWho(null);
    setToken(null);
  };

  if (error) return <Shell nav={[]}><p role="alert" class="error">{error}</p></Shell>;
  if (!info) return <Shell nav={[]}><p role="status" class="muted">Loading…</p></Shell>;
  if (info === 'sign-in') {
    return (
      <Shell nav={[]}>
        <SignIn
          api={api}
          onSignedIn={(t) => {
            sessionStorage.setItem(TOKEN_KEY, t);
            setToken(t);
          }}
        />
      </Shell>
    );
  }

  if (info.mode === 'machine') {
    const page = route.path[0] ?? (info.sysroot ? 'deployments' : 'diff');
    const nav: [string, string][] = info.sysroot ? [['deployments', 'Deployments'], ['diff', 'Tree diff']] : [['diff', 'Tree diff']];
    return (
      <Shell nav={nav} current={page} subtitle={`this machine · ${info.repo}`}>
        {page === 'deployments' && info.sysroot && <DeploymentsPage api={api} />}
        {page === 'diff' && <DiffPage api={api} from={route.query.get('from') ?? undefined} to={route.query.get('to') ?? undefined} />}
      </Shell>
    );
  }

  const page = route.path[0] ?? 'overview';
  const nav: [string, string][] = [['overview', 'Overview'], ['rollouts', 'Rollouts'], ['audit', 'Audit log'], ['diff', 'Tree diff']];
  const right = who && (
    <div class="right">
      <span data-role={who.role}>
        {who.name} ({who.role === 'viewer' ? 'viewer: read-only' : 'admin'})
      </span>
      <button type="button" onClick={signOut}>
        Sign out
      </button>
    </div>
  );
  return (
    <Shell nav={nav} current={page === 'devices' ? 'overview' : page} subtitle="fleet" right={right}>
      {!who && <p role="status" class="muted">Checking the token…</p>}
      {who && page === 'overview' && <OverviewPage api={api} label={route.query.get('label') ?? undefined} />}
      {who && page === 'rollouts' && !route.path[1] && <RolloutsPage api={api} />}
      {who && page === 'rollouts' && route.path[1] && <RolloutPage api={api} id={route.path[1]} who={who} />}
      {who && page === 'devices' && route.path[1] && <DevicePage api={api} id={route.path[1]} who={who} />}
      {who && page === 'audit' && <AuditPage api={api} query={route.query} />}
      {who && page === 'diff' && releases && <DiffPage api={api} from={route.query.get('from') ?? undefined} to={route.query.get('to') ?? undefined} extraChoices={releases} />}
    </Shell>
  );
}

function Shell(props: { nav: [string, string][]; current?: string; subtitle?: string; children: ComponentChildren; right?: ComponentChildren }) {
  return (
    <>
      <a
        class="skip"
        href="#main"
        onClick={(e) => {
          // Hash routes own location.hash: move the focus without navigating.
          e.preventDefault();
          document.getElementById('main')?.focus();
        }}
      >
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
