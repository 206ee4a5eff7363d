// The dashboard's one client for the fleet and repository HTTP APIs
// (docs/fleet-api.md). Every request the pages make goes through here, to
// the page's own origin, with the signed-in token when there is one.

export type ChangeKind = 'added' | 'removed' | 'modified' | 'metadata';
export type EntryType = 'file' | 'dir' | 'symlink';

export interface DiffEntry {
  path: string;
  change: ChangeKind;
  type: EntryType;
  oldType?: EntryType;
  oldSize?: number;
  newSize?: number;
  oldMode?: number;
  newMode?: number;
  oldOwner?: string;
  newOwner?: string;
  oldTarget?: string;
  newTarget?: string;
}

export interface FolderSize {
  oldSize: number | null;
  newSize: number | null;
}

export interface RepoDiff {
  from: string;
  to: string;
  entries: DiffEntry[];
  summary: { added: number; removed: number; modified: number; metadata: number; bytesAdded: number; bytesRemoved: number };
  folders: Record<string, FolderSize>;
}

export interface RepoFile {
  commit: string;
  path: string;
  type: EntryType;
  size: number;
  text: string | null;
  reason?: 'binary' | 'too-large' | 'not-a-file';
  target?: string;
}

export interface RepoRef {
  name: string;
  commit: string;
  version: string | null;
  timestamp: string;
  subject: string;
}

export interface RepoCommit {
  commit: string;
  subject: string;
  version: string | null;
  timestamp: string;
  parent: string | null;
}

export interface DebPackage {
  name: string;
  version: string;
  architecture: string;
}

export interface PackageChange {
  name: string;
  architecture: string;
  from: string;
  to: string;
}

export interface PackageDiff {
  from: string;
  to: string;
  fromDb: string;
  toDb: string;
  added: DebPackage[];
  removed: DebPackage[];
  upgraded: PackageChange[];
  downgraded: PackageChange[];
  unchanged: number;
}

export interface RepoInfo {
  mode: 'fleet' | 'machine';
  sysroot: boolean;
  repo: string;
}

export interface DeploymentStatus {
  index: number | null;
  stateroot: string;
  checksum: string;
  serial: number;
  version: string | null;
  timestamp: string | null;
  origin: string | null;
  booted: boolean;
  default: boolean;
  pending: boolean;
  rollback: boolean;
  staged: boolean;
  pinned: boolean;
  triesLeft: number | null;
  bad: boolean;
  badReason: string | null;
  health: unknown;
  etcConflicts: { path: string; reason: string }[];
  kargs: string[];
}

export interface SysrootStatus {
  sysroot: string;
  booted: number | null;
  deployments: DeploymentStatus[];
}

/** An answer other than success: the API's error code and one-line message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export type Query = Record<string, string | number | undefined>;

function qs(q: Query = {}): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
}

export class Api {
  /** The admin or viewer token, kept for this browser tab only. */
  token: string | null;

  constructor(private readonly base = '', token: string | null = null) {
    this.token = token;
  }

  async request<T>(method: 'GET' | 'POST' | 'PATCH', path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(this.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let data: unknown = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      // not JSON (a proxy's error page): reported below by status
    }
    if (!res.ok) {
      const e = (data as { error?: { code?: string; message?: string } } | null)?.error;
      throw new ApiError(res.status, e?.code ?? `HTTP_${res.status}`, e?.message ?? `${method} ${path}: HTTP ${res.status}`);
    }
    return data as T;
  }

  // Repository (read-only; the fleet server and `strata ui`)
  repoInfo = () => this.request<RepoInfo>('GET', '/v1/repo/info');
  refs = () => this.request<RepoRef[]>('GET', '/v1/repo/refs');
  log = (ref: string, limit = 50) => this.request<RepoCommit[]>('GET', `/v1/repo/log/${ref.split('/').map(encodeURIComponent).join('/')}${qs({ limit })}`);
  diff = (from: string, to: string) => this.request<RepoDiff>('GET', `/v1/repo/diff${qs({ from, to })}`);
  file = (commit: string, path: string) => this.request<RepoFile>('GET', `/v1/repo/file${qs({ commit, path })}`);
  packagesDiff = (from: string, to: string) => this.request<PackageDiff>('GET', `/v1/repo/packages/diff${qs({ from, to })}`);
  sysrootStatus = () => this.request<SysrootStatus>('GET', '/v1/sysroot/status');
}

// Fleet (admin or viewer token; writes need admin)

export interface Whoami {
  name: string;
  role: 'admin' | 'viewer';
}

export interface Overview {
  devices: number;
  byVersion: Record<string, number>;
  byGroup: Record<string, number>;
  byState: Record<string, number>;
  byChannel: Record<string, number>;
  healthy: number;
  updating: number;
  failed: number;
  drifting: number;
  offline: number;
}

export interface DeviceDeployment {
  index?: number;
  commit: string;
  version?: string | null;
  booted?: boolean;
  default?: boolean;
  rollback?: boolean;
  pinned?: boolean;
  staged?: boolean;
  health?: string | null;
}

export interface AuditEntry {
  seq: number;
  at: string;
  actor: string;
  action: string;
  subject: string;
  before: unknown;
  after: unknown;
  prevHash: string;
  hash: string;
}

export interface Device {
  id: string;
  name: string;
  machineId: string | null;
  group: string;
  labels: Record<string, string>;
  state: string | null;
  lastSeen: string | null;
  enrolledAt: string;
  booted: { commit: string | null; version: string | null };
  stagedCommit: string | null;
  etcDigest: string | null;
  health: { ok?: boolean; failed?: string[]; at?: string } | null;
  verify: { ok?: boolean; modified?: number; added?: number; removed?: number; at?: string } | null;
  deployments: DeviceDeployment[];
  overrideCommit: string | null;
}

export interface DeviceDetail extends Device {
  history: AuditEntry[];
}

export interface Release {
  id: string;
  channel: string;
  commit: string;
  version: string;
  notes: string;
  createdAt: string;
}

export interface Wave {
  percent: number;
  soakSeconds: number;
  startedAt: string | null;
  completedAt: string | null;
  devices: number;
  updated: number;
  healthy: number;
  failed: number;
}

export interface Rollout {
  id: string;
  releaseId: string;
  commit: string;
  version: string;
  group: string;
  kind: 'forward' | 'rollback';
  state: 'active' | 'paused' | 'completed' | 'aborted' | 'rolled-back';
  pausedReason: string | null;
  currentWave: number;
  waves: Wave[];
  maxConcurrent: number;
  failureThreshold: number;
  graceSeconds: number;
  previousReleaseId: string | null;
  failureHistory: { at: string; wave: number; rate: number }[];
  createdAt: string;
  updatedAt: string;
}

export interface AuditVerify {
  ok: boolean;
  entries: number;
  firstBad?: { seq: number; reason: string };
}

export type RolloutAction = 'pause' | 'resume' | 'abort' | 'rollback';

export class FleetApi extends Api {
  whoami = () => this.request<Whoami>('GET', '/v1/whoami');
  overview = () => this.request<Overview>('GET', '/v1/overview');
  devices = (q: { label?: string; state?: string; group?: string; version?: string } = {}) => this.request<Device[]>('GET', `/v1/devices${qs(q)}`);
  device = (id: string) => this.request<DeviceDetail>('GET', `/v1/devices/${encodeURIComponent(id)}`);
  rollbackDevice = (id: string) => this.request<{ commit: string }>('POST', `/v1/devices/${encodeURIComponent(id)}/rollback`, {});
  releases = () => this.request<Release[]>('GET', '/v1/releases');
  rollouts = () => this.request<Rollout[]>('GET', '/v1/rollouts');
  rollout = (id: string) => this.request<Rollout>('GET', `/v1/rollouts/${encodeURIComponent(id)}`);
  rolloutAction = (id: string, action: RolloutAction, reason?: string) => this.request<Rollout>('POST', `/v1/rollouts/${encodeURIComponent(id)}/${action}`, reason ? { reason } : {});
  audit = (q: { device?: string; action?: string; since?: string; until?: string; limit?: number } = {}) => this.request<AuditEntry[]>('GET', `/v1/audit${qs(q)}`);
  auditVerify = () => this.request<AuditVerify>('GET', '/v1/audit/verify');
}
