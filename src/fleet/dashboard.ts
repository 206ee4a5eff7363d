// The dashboard on the fleet server: the repository API (any admin or viewer
// token), `GET /v1/whoami` (which role the token has, so the pages leave out
// what a viewer cannot do) and the dashboard's files at `/`.
//
// `dashboard` is one Fastify plugin that buildApp registers after its token
// hook: every route of its API scope, the repository API's included, is
// marked `auth: 'viewer'`, so that hook checks the token as for any other
// route.

import type { FastifyPluginAsync } from 'fastify';
import { repoApi } from './repo-api.js';
import { webStatic } from './web-static.js';

export interface DashboardOptions {
  /** The repository whose commits the tree diff compares (the one the server serves under /repo). */
  repo?: string;
  webRoot?: string;
}

export const dashboard: FastifyPluginAsync<DashboardOptions> = async (app, opts) => {
  await app.register(async (api) => {
    api.addHook('onRoute', (route) => {
      route.config = { ...route.config, auth: 'viewer' };
    });
    api.get('/v1/whoami', async (req) => ({ name: req.admin?.name, role: req.admin?.role }));
    if (opts.repo) await api.register(repoApi, { repo: opts.repo, mode: 'fleet' });
    else api.get('/v1/repo/info', async () => ({ mode: 'fleet', sysroot: false, repo: null }));
  });
  await app.register(webStatic, { root: opts.webRoot });
};
