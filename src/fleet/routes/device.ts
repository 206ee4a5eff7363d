// The device API: enrollment, what to deploy now, reports.

import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { StrataError } from '../../errors.js';
import { deviceToken, type FleetContext } from '../app.js';
import { enrollDevice, nextForDevice, pollFacts, reportFromDevice } from '../devices.js';
import { enrollBody, errorSchema, nextAnswer, reportBody } from '../schemas.js';

export function registerDeviceRoutes(root: FastifyInstance, ctx: FleetContext): void {
  const app = root.withTypeProvider<ZodTypeProvider>();
  const limit = ctx.opts.enrollRateLimit ?? { max: 30, timeWindowMs: 60_000 };
  app.post(
    '/v1/enroll',
    {
      config: { auth: 'none', rateLimit: { max: limit.max, timeWindow: limit.timeWindowMs } },
      schema: {
        tags: ['device'],
        summary: 'Enroll a device with an enrollment token; answers its device token, once',
        security: [],
        body: enrollBody,
        response: { 201: z.object({ deviceId: z.string(), token: z.string(), group: z.string() }), 403: errorSchema, 429: errorSchema },
      },
    },
    async (req, reply) => {
      const res = await enrollDevice(ctx.fdb, req.body, ctx.now());
      return reply.status(201).send(res);
    },
  );

  // The hot path: it authenticates itself, reading the device and its
  // group's rollout in one query rather than one in the hook and more here.
  app.get(
    '/v1/device/next',
    {
      config: { auth: 'device-self' },
      schema: { tags: ['device'], summary: 'What this device should deploy now', security: [{ bearer: [] }], response: { 200: nextAnswer, 401: errorSchema } },
      // The answer is built here from typed values; the schema documents it
      // (OpenAPI) without checking every poll's answer again.
      serializerCompiler: () => (data) => JSON.stringify(data),
    },
    async (req) => {
      const facts = await pollFacts(ctx.fdb, deviceToken(req));
      if (!facts) throw new StrataError('FLEET_UNAUTHORIZED', 'unknown device token; enroll the device again');
      const now = ctx.now();
      ctx.lastSeen.touch(facts.dev.id, now);
      return nextForDevice(
        ctx.fdb,
        facts.dev,
        now,
        { repoUrl: ctx.repoUrlFor(req), pollAfterSeconds: ctx.opts.pollAfterSeconds ?? 60, evaluateEverySeconds: ctx.opts.evaluateEverySeconds ?? 30 },
        facts.rollout,
      );
    },
  );

  app.post(
    '/v1/device/report',
    { config: { auth: 'device' }, schema: { tags: ['device'], summary: "This device's state, deployments, health and verify result", body: reportBody, response: { 200: z.object({ ok: z.boolean() }), 403: errorSchema } } },
    async (req) => {
      await reportFromDevice(ctx.fdb, req.device!, req.body, ctx.now());
      return { ok: true };
    },
  );
}
