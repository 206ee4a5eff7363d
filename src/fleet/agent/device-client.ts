// The one HTTP client of the fleet server's device API (docs/fleet-api.md):
// enroll, next, report, and FleetLock's pre-reboot / steady-state. Answers
// are checked against the contract before use; failures become StrataErrors
// that tell a network outage (retry later) from a refusal (fix something).

import { z } from 'zod';
import { StrataError } from '../../errors.js';

const COMMIT = z.string().regex(/^[0-9a-f]{64}$/);

const WindowSchema = z.object({
  days: z.array(z.enum(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'])).optional(),
  start: z.string().regex(/^\d{2}:\d{2}$/),
  end: z.string().regex(/^\d{2}:\d{2}$/),
  timeZone: z.string().optional(),
});
export type RebootWindow = z.infer<typeof WindowSchema>;

const NoneSchema = z.object({
  action: z.literal('none'),
  reason: z.string(),
  pollAfterSeconds: z.number().nonnegative().optional(),
});

const DeploySchema = z.object({
  action: z.literal('deploy'),
  rolloutId: z.string().nullish(),
  releaseId: z.string().nullish(),
  commit: COMMIT,
  version: z.string().nullish(),
  /** Null when the release names a bare commit. */
  ref: z.string().min(1).nullish(),
  /** Null when the server knows no repository URL: the agent's remote must already be configured. */
  repoUrl: z.string().min(1).nullish(),
  allowDowngrade: z.boolean().optional(),
  pollAfterSeconds: z.number().nonnegative().optional(),
  /** Not in every server's answer: the reboot window of the rollout, when it has one. */
  window: WindowSchema.nullish(),
});

const NextSchema = z.discriminatedUnion('action', [NoneSchema, DeploySchema]);
export type NextAnswer = z.infer<typeof NextSchema>;
export type DeployAnswer = z.infer<typeof DeploySchema>;

const EnrollSchema = z.object({ deviceId: z.string().min(1), token: z.string().min(1), group: z.string().nullish() });
export type EnrollAnswer = z.infer<typeof EnrollSchema>;

export type ReportState = 'checking' | 'downloading' | 'staged' | 'rebooting' | 'booted' | 'healthy' | 'unhealthy' | 'rolled-back';

export interface DeviceReport {
  state: ReportState;
  rolloutId?: string;
  commit?: string;
  details?: string;
  booted?: { commit: string; version: string | null };
  staged?: { commit: string };
  deployments?: {
    index: number;
    commit: string;
    version: string | null;
    booted: boolean;
    default: boolean;
    rollback: boolean;
    pinned: boolean;
    staged: boolean;
    health: 'blessed' | 'failed' | 'pending' | null;
  }[];
  etcDigest?: string;
  verify?: { ok: boolean; modified: number; added: number; removed: number; at: string };
  health?: { ok: boolean; failed: string[]; at: string };
}

export type LockAnswer = { ok: true } | { ok: false; status: number; kind: string; value: string };

export interface DeviceClientOptions {
  /** Base URL of the fleet server, e.g. http://fleet.example:8080 */
  server: string;
  /** Device token (not needed for enroll). */
  token?: string;
  /** Per request, default 30 s. */
  timeoutMs?: number;
  /** For tests only: another fetch. */
  fetch?: typeof fetch;
}

const MAX_DETAILS = 4096;

export class DeviceClient {
  readonly server: URL;
  private readonly token?: string;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;

  constructor(opts: DeviceClientOptions) {
    this.server = parseServerUrl(opts.server);
    this.token = opts.token;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.fetchImpl = opts.fetch ?? fetch;
  }

  async enroll(body: { enrollmentToken: string; name: string; machineId?: string; labels?: Record<string, string> }): Promise<EnrollAnswer> {
    const r = await this.request('POST', '/v1/enroll', body, { auth: false });
    return this.parse(EnrollSchema, r, '/v1/enroll');
  }

  async next(): Promise<NextAnswer> {
    const r = await this.request('GET', '/v1/device/next');
    return this.parse(NextSchema, r, '/v1/device/next');
  }

  async report(report: DeviceReport): Promise<void> {
    const body = report.details && report.details.length > MAX_DETAILS ? { ...report, details: report.details.slice(0, MAX_DETAILS - 1) + '…' } : report;
    await this.request('POST', '/v1/device/report', body);
  }

  /** FleetLock: asks for a reboot slot. A refusal (no slot free) is an answer, not an error. */
  preReboot(id: string, group: string): Promise<LockAnswer> {
    return this.fleetLock('/v1/pre-reboot', id, group);
  }

  /** FleetLock: gives the reboot slot back. */
  steadyState(id: string, group: string): Promise<LockAnswer> {
    return this.fleetLock('/v1/steady-state', id, group);
  }

  private async fleetLock(route: string, id: string, group: string): Promise<LockAnswer> {
    const r = await this.request('POST', route, { client_params: { id, group } }, { headers: { 'fleet-lock-protocol': 'true' }, acceptStatus: (s) => s >= 400 && s < 500 && s !== 401 && s !== 403 });
    if (r.status < 300) return { ok: true };
    const parsed = z.object({ kind: z.string(), value: z.string() }).safeParse(r.body);
    return parsed.success ? { ok: false, status: r.status, ...parsed.data } : { ok: false, status: r.status, kind: 'unknown', value: JSON.stringify(r.body)?.slice(0, 200) ?? '' };
  }

  private parse<T>(schema: z.ZodType<T>, r: { body: unknown }, route: string): T {
    const parsed = schema.safeParse(r.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new StrataError('AGENT_PROTOCOL', `${this.url(route)} answered something the device API does not allow: ${issue.path.join('.') || '(body)'}: ${issue.message}`, { route });
    }
    return parsed.data;
  }

  private url(route: string): string {
    return new URL(route.replace(/^\//, ''), this.server).href;
  }

  private async request(method: 'GET' | 'POST', route: string, body?: unknown, opts: { auth?: boolean; headers?: Record<string, string>; acceptStatus?: (s: number) => boolean } = {}): Promise<{ status: number; body: unknown }> {
    const url = this.url(route);
    const headers: Record<string, string> = { accept: 'application/json', ...opts.headers };
    if (opts.auth !== false) {
      if (!this.token) throw new StrataError('AGENT_NOT_ENROLLED', `no device token for ${this.server.href}: run 'strata agent enroll' or pass --token`, {});
      headers.authorization = `Bearer ${this.token}`;
    }
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await this.fetchImpl(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      const why = e.name === 'TimeoutError' ? `no answer within ${Math.round(this.timeoutMs / 1000)} s` : e.cause?.code ?? e.message;
      throw new StrataError('AGENT_SERVER_UNREACHABLE', `cannot reach the fleet server at ${url}: ${why}`, { url });
    }
    const text = await res.text().catch(() => '');
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    if (res.ok || opts.acceptStatus?.(res.status)) {
      if (res.ok && parsed === null && text) throw new StrataError('AGENT_PROTOCOL', `${url} answered ${res.status} with a body that is not JSON`, { url });
      return { status: res.status, body: parsed };
    }
    const err = z.object({ error: z.object({ code: z.string(), message: z.string() }) }).safeParse(parsed);
    const what = err.success ? `${err.data.error.code}: ${err.data.error.message}` : `${res.status} ${res.statusText}`;
    if (res.status >= 500 || res.status === 429 || res.status === 408) {
      throw new StrataError('AGENT_SERVER_UNREACHABLE', `the fleet server at ${url} answered ${res.status} (${what.replace(/[\r\n]+/g, ' ')})`, { url, status: res.status });
    }
    throw new StrataError('AGENT_REJECTED', `the fleet server refused ${method} ${url}: ${what.replace(/[\r\n]+/g, ' ')}`, { url, status: res.status, code: err.success ? err.data.error.code : null });
  }
}

export function parseServerUrl(text: string): URL {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new StrataError('USAGE', `--server '${text}' is not a URL; give one like http://fleet.example:8080`, { server: text });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new StrataError('USAGE', `--server '${text}' must be http or https`, { server: text });
  if (u.username || u.password) throw new StrataError('USAGE', `--server '${text}' holds credentials; pass the token with --token`, { server: text });
  if (!u.pathname.endsWith('/')) u.pathname += '/';
  return u;
}
