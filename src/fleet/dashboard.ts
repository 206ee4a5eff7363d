// The dashboard on the fleet server: the repository API (any admin or viewer
// token), `GET /v1/whoami` (which role the token has, so the pages leave out
// what a viewer cannot do) and the dashboard's files at `/`.
//
// `dashboard` is one Fastify plugin that buildApp registers; it checks
// tokens itself, so it needs nothing from the app's own hooks.

import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
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
