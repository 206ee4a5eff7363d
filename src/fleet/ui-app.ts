// `strata ui`: one machine's dashboard. A small read-only Fastify app with the
// repository API, the sysroot's status and the dashboard's files.

import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { repoApi } from './repo-api.js';
import { webStatic } from './web-static.js';

export interface UiAppOptions {
  repo: string;
  sysroot?: string;
  /** Built dashboard folder (default dist/web). */
  webRoot?: string;
}

export async function buildUiApp(opts: UiAppOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  // Only reads: anything else is refused before a route is looked up.
  app.addHook('onRequest', async (req, reply) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply.code(405).send({ error: { code: 'USAGE', message: 'strata ui is read-only' } });
  });
  await app.register(repoApi, { repo: opts.repo, sysroot: opts.sysroot, mode: 'machine' });
  await app.register(webStatic, { root: opts.webRoot });
  return app;
}

/** The repository a sysroot keeps its commits in. */
export function sysrootRepo(sysroot: string): string {
  return path.join(sysroot, 'ostree', 'repo');
}
