// The dashboard on the fleet server: the repository API (any admin or viewer
// token), `GET /v1/whoami` (which role the token has, so the pages leave out
// what a viewer cannot do) and the dashboard's files at `/`.
//
// `dashboard` is one Fastify plugin the fleet app can register as it is
// (`app.register(dashboard, { fdb, repo })`); it checks tokens itself, so it
// needs nothing from the app's own hooks. Until buildApp registers it,
// `serveFleetWithDashboard` puts both apps behind one HTTP server.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyPluginAsync, type FastifyRequest } from 'fastify';
import { StrataError } from '../errors.js';
import type { FleetDb } from './db.js';
import { hashToken } from './tokens.js';
import { repoApi } from './repo-api.js';
import { webStatic } from './web-static.js';

export interface DashboardOptions {
  fdb: FleetDb;
  /** The repository whose commits the tree diff compares (the one the server serves under /repo). */
  repo?: string;
  webRoot?: string;
}

export interface Viewer {
  name: string;
  role: 'admin' | 'viewer';
}

const errorBody = (code: string, message: string) => ({ error: { code, message } });

async function tokenOwner(fdb: FleetDb, req: FastifyRequest): Promise<Viewer> {
  const m = /^Bearer\s+([A-Za-z0-9_-]{16,128})$/.exec(req.headers.authorization ?? '');
  if (!m) throw new StrataError('FLEET_UNAUTHORIZED', 'this request needs a token: send Authorization: Bearer <token>');
  const t = await fdb.db.selectFrom('admin_tokens').select(['name', 'role']).where('token_hash', '=', hashToken(m[1])).executeTakeFirst();
  if (!t) throw new StrataError('FLEET_UNAUTHORIZED', 'unknown admin token; create one with strata fleet token create');
  return { name: t.name, role: t.role === 'admin' ? 'admin' : 'viewer' };
}

export const dashboard: FastifyPluginAsync<DashboardOptions> = async (app, opts) => {
  await app.register(async (api) => {
    api.addHook('onRequest', async (req, reply) => {
      try {
        (req as FastifyRequest & { viewer?: Viewer }).viewer = await tokenOwner(opts.fdb, req);
      } catch (err) {
        if (err instanceof StrataError) return reply.code(401).send(errorBody(err.code, err.message));
        throw err;
      }
    });
    api.get('/v1/whoami', async (req) => (req as FastifyRequest & { viewer?: Viewer }).viewer);
    if (opts.repo) await api.register(repoApi, { repo: opts.repo, mode: 'fleet' });
    else api.get('/v1/repo/info', async () => ({ mode: 'fleet', sysroot: false, repo: null }));
  });
  await app.register(webStatic, { root: opts.webRoot });
};

/** Paths the dashboard app answers; everything else goes to the fleet app. */
export function isDashboardPath(url: string): boolean {
  const p = url.split('?')[0];
  if (p.startsWith('/v1/repo/') || p === '/v1/whoami') return true;
  if (p.startsWith('/v1/') || p.startsWith('/repo/') || p === '/metrics' || p === '/openapi.json') return false;
  return true;
}

export async function buildDashboardApp(opts: DashboardOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  await app.register(dashboard, opts);
  await app.ready();
  return app;
}

/** One HTTP server in front of the fleet app and the dashboard app. */
export async function serveFleetWithDashboard(fleet: FastifyInstance, dash: FastifyInstance, opts: { port?: number; host?: string } = {}): Promise<{ url: string; close(): Promise<void> }> {
  await fleet.ready();
  await dash.ready();
  const server = http.createServer((req, res) => (isDashboardPath(req.url ?? '/') ? dash.routing(req, res) : fleet.routing(req, res)));
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
