// The device API: enrollment, what to deploy now, reports.

import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { FleetContext } from '../app.js';
import { enrollDevice, nextForDevice, reportFromDevice } from '../devices.js';
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

  app.get(
    '/v1/device/next',
    { config: { auth: 'device' }, schema: { tags: ['device'], summary: 'What this device should deploy now', response: { 200: nextAnswer, 401: errorSchema } } },
    async (req) =>
      nextForDevice(ctx.fdb, req.device!, ctx.now(), {
        repoUrl: ctx.repoUrlFor(req),
        pollAfterSeconds: ctx.opts.pollAfterSeconds ?? 60,
        evaluateEverySeconds: ctx.opts.evaluateEverySeconds ?? 30,
      }),
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
