// The fleet server as a Fastify app, built by buildApp() and started
// elsewhere (listen), so tests drive it with app.inject(). It keeps nothing
// in memory that two instances behind a load balancer could disagree on:
// rollout state, update slots, reboot locks and the audit chain live in the
// database and change only inside its transactions. Per instance: request
// counters for /metrics, the enrollment rate-limit window, and a last-seen
// write-behind buffer flushed every second.

import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { StrataError, httpStatusOf } from '../errors.js';
import type { FleetDb } from './db.js';
import { deviceByToken, LastSeen, type DeviceAuth } from './devices.js';
import { hashToken, type Role } from './tokens.js';
import { Metrics } from './metrics.js';
import { registerDeviceRoutes } from './routes/device.js';
import { registerAdminRoutes } from './routes/admin.js';
import { registerFleetLockRoutes } from './routes/fleetlock.js';
import { registerRepoRoutes } from './routes/repo.js';
import { dashboard } from './dashboard.js';

export interface FleetAppOptions {
  db: FleetDb;
  /** An archive repository to serve under /repo/. */
  repo?: string;
  /** Where devices pull objects from (a CDN); default: this server's /repo when `repo` is set. */
  repoUrl?: string;
  /** The clock (tests move it). */
  now?: () => Date;
  logger?: boolean;
  /** Enrollment requests per client address per window. */
  enrollRateLimit?: { max: number; timeWindowMs: number };
  pollAfterSeconds?: number;
  /** How often, at most, polls re-evaluate an active rollout. */
  evaluateEverySeconds?: number;
  /** Close the database when the app closes (the CLI owns it; tests may not). */
  closeDb?: boolean;
  /** The dashboard at `/` and its repository API (default on; `webRoot`: another build of it). */
  dashboard?: boolean | { webRoot?: string };
}

/** `device-self`: a device route that checks the token itself (the poll, in one query). */
export type AuthKind = 'none' | 'device' | 'device-self' | 'viewer' | 'admin';

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: AuthKind;
  }
  interface FastifyRequest {
    device: DeviceAuth | null;
    admin: { id: string; name: string; role: Role } | null;
  }
}

export interface FleetContext {
  fdb: FleetDb;
  now: () => Date;
  opts: FleetAppOptions;
  lastSeen: LastSeen;
  metrics: Metrics;
  /** The URL devices pull from, for this request. */
  repoUrlFor(req: FastifyRequest): string | null;
}

export type FleetApp = FastifyInstance;

function bearer(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (!h) return null;
  const m = /^Bearer\s+([A-Za-z0-9_-]{16,128})$/.exec(h);
  return m ? m[1] : '';
}

/** The request's bearer token, or FLEET_UNAUTHORIZED. */
export function deviceToken(req: FastifyRequest): string {
  const token = bearer(req);
  if (token === null) throw new StrataError('FLEET_UNAUTHORIZED', 'this request needs a token: send Authorization: Bearer <token>');
  if (token === '') throw new StrataError('FLEET_UNAUTHORIZED', 'the Authorization header is not "Bearer <token>"');
  return token;
}

export function errorBody(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message: message.replace(/[\r\n]+/g, ' ') } };
}

export function sendError(reply: FastifyReply, err: StrataError): FastifyReply {
  return reply.status(httpStatusOf(err.code)).send(errorBody(err.code, err.message));
}

export async function buildApp(opts: FleetAppOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: opts.logger ?? false, bodyLimit: 256 * 1024, trustProxy: false }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  const now = opts.now ?? (() => new Date());
  const ctx: FleetContext = {
    fdb: opts.db,
    now,
    opts,
    lastSeen: new LastSeen(opts.db),
    metrics: new Metrics(),
    repoUrlFor(req) {
      if (opts.repoUrl) return opts.repoUrl;
      if (opts.repo) return `${req.protocol}://${req.host}/repo`;
      return null;
    },
  };

  app.decorateRequest('device', null);
  app.decorateRequest('admin', null);

  await app.register(swagger, {
    openapi: {
      info: { title: 'strata fleet API', version: '1', description: 'Devices, releases, rollouts, drift and the audit log (docs/fleet-api.md).' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(rateLimit, { global: false });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof StrataError) return sendError(reply, err);
    if (err.validation) {
      const where = err.validationContext ?? 'request';
      const first = err.validation[0] as { instancePath?: string; message?: string } | undefined;
      const field = first?.instancePath ? `${where}${first.instancePath.replace(/\//g, '.')}` : where;
      return reply.status(400).send(errorBody('FLEET_BAD_REQUEST', `${field}: ${first?.message ?? err.message}`));
    }
    if (err.statusCode === 429) return reply.status(429).send(errorBody('FLEET_RATE_LIMITED', 'too many requests from this address; retry later'));
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      const code = err.statusCode === 404 ? 'FLEET_NOT_FOUND' : err.statusCode === 401 ? 'FLEET_UNAUTHORIZED' : 'FLEET_BAD_REQUEST';
      return reply.status(err.statusCode).send(errorBody(code, err.message));
    }
    req.log.error(err);
    return reply.status(500).send(errorBody('INTERNAL', 'internal error; the server log has the details'));
  });
  app.setNotFoundHandler((req, reply) => reply.status(404).send(errorBody('FLEET_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0].slice(0, 200)}`)));

  app.addHook('onRequest', async (req) => {
    const auth = req.routeOptions.config?.auth ?? 'none';
    if (auth === 'none' || auth === 'device-self') return;
    const token = deviceToken(req);
    if (auth === 'device') {
      const dev = await deviceByToken(ctx.fdb, token);
      if (!dev) throw new StrataError('FLEET_UNAUTHORIZED', 'unknown device token; enroll the device again');
      req.device = dev;
      ctx.lastSeen.touch(dev.id, now());
      return;
    }
    const t = await ctx.fdb.db.selectFrom('admin_tokens').select(['id', 'name', 'role']).where('token_hash', '=', hashToken(token)).executeTakeFirst();
    if (!t) throw new StrataError('FLEET_UNAUTHORIZED', 'unknown admin token; create one with strata fleet token create');
    if (auth === 'admin' && t.role !== 'admin') throw new StrataError('FLEET_FORBIDDEN', `token '${t.name}' has the viewer role; this needs admin`);
    req.admin = { id: t.id, name: t.name, role: t.role as Role };
  });
  app.addHook('onResponse', (req, reply, done) => {
    ctx.metrics.countRequest(req.method, req.routeOptions.url ?? 'unmatched', reply.statusCode);
    done();
  });
  app.addHook('onClose', async () => {
    await ctx.lastSeen.flush().catch(() => {});
    if (opts.closeDb) await opts.db.close();
  });

  registerDeviceRoutes(app, ctx);
  registerAdminRoutes(app, ctx);
  registerFleetLockRoutes(app, ctx);
  if (opts.repo) registerRepoRoutes(app, opts.repo);
  if (opts.dashboard !== false) {
    const webRoot = typeof opts.dashboard === 'object' ? opts.dashboard.webRoot : undefined;
    await app.register(dashboard, { repo: opts.repo, webRoot });
  }

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/metrics', { config: { auth: 'viewer' }, schema: { hide: true } }, async (_req, reply) => {
    const text = await ctx.metrics.render(ctx.fdb);
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(text);
  });
  await app.ready();
  return app;
}

/** The actor name written to the audit log for an admin request. */
export function actorOf(req: FastifyRequest): string {
  return req.admin ? `admin:${req.admin.name}` : req.device ? `device:${req.device.id}` : 'anonymous';
}
