// The repository's static files under /repo/, answered by the same handler as
// `strata serve` (its path checks, ranges and validators), not a second copy.

import type { FastifyInstance } from 'fastify';
import { repoRequestHandler } from '../../remote/serve.js';

export function registerRepoRoutes(app: FastifyInstance, repo: string): void {
  const handler = repoRequestHandler({ repo });
  const serve = (req: { raw: import('node:http').IncomingMessage }, reply: { hijack(): void; raw: import('node:http').ServerResponse }): void => {
    reply.hijack();
    req.raw.url = (req.raw.url ?? '/').slice('/repo'.length) || '/';
    handler(req.raw, reply.raw);
  };
  app.route({ method: 'GET', url: '/repo/*', schema: { hide: true }, handler: (req, reply) => serve(req, reply) });
}
