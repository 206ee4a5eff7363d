// The dashboard's static files (dist/web, built by `npm run build`) at `/`,
// for the fleet server and `strata ui` alike. Pages may only reach their own
// origin: the Content-Security-Policy makes a stray CDN font or script fail.

import fs from 'node:fs';
import path from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import fastifyStatic from '@fastify/static';

export const DASHBOARD_CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/** The package root: the nearest folder up from this file with a package.json (works from src/ and dist/src/). */
function packageRoot(): string {
  let dir = import.meta.dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return dir;
}

export function defaultWebRoot(): string {
  return path.join(packageRoot(), 'dist', 'web');
}

export interface WebStaticOptions {
  /** Folder of the built dashboard (default dist/web of this package). */
  root?: string;
}

export const webStatic: FastifyPluginAsync<WebStaticOptions> = async (app, opts) => {
  const root = opts.root ?? defaultWebRoot();
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('content-security-policy', DASHBOARD_CSP);
    reply.header('x-content-type-options', 'nosniff');
    return payload;
  });
  if (!fs.existsSync(path.join(root, 'index.html'))) {
    app.get('/', async (_req, reply) => reply.code(503).type('text/plain').send(`the dashboard is not built (no ${root}/index.html): run npm run build\n`));
    return;
  }
  await app.register(fastifyStatic, { root, prefix: '/', index: ['index.html'], wildcard: false, maxAge: 0 });
};
