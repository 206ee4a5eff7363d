// The admin API: admin tokens write, viewer tokens read.

import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { StrataError } from '../../errors.js';
import { actorOf, type FleetContext } from '../app.js';
import {
  createChannel, createGroup, createRelease, getDevice, listChannels, listDevices, listGroups, listReleases, overview, patchDevice, patchGroup, rollbackDevice,
} from '../admin.js';
import { commitAt, listAudit, verifyAudit } from '../audit.js';
import { driftReport } from '../drift.js';
import { listLocks } from '../fleetlock.js';
import { createRollout, getRollout, listRollouts, rolloutAction } from '../rollouts.js';
import { commitSchema, digestSchema, idSchema, isoTime, labelsSchema, nameSchema, rolloutBody } from '../schemas.js';
import { createAdminToken, createEnrollmentToken } from '../tokens.js';

const refSchema = z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]*(\/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$/, 'an OSTree ref such as os/x86_64/stable').max(255);

export function registerAdminRoutes(root: FastifyInstance, ctx: FleetContext): void {
  const app = root.withTypeProvider<ZodTypeProvider>();
  const read = { auth: 'viewer' as const };
  const write = { auth: 'admin' as const };
  const now = ctx.now;

  app.get('/v1/channels', { config: read, schema: { tags: ['admin'], summary: 'Channels' } }, async () => listChannels(ctx.fdb));
  app.post('/v1/channels', { config: write, schema: { tags: ['admin'], summary: 'Create a channel', body: z.object({ name: nameSchema, ref: refSchema }) } }, async (req, reply) =>
    reply.status(201).send(await createChannel(ctx.fdb, req.body, actorOf(req), now())),
  );

  const groupBody = z.object({ name: nameSchema, channel: nameSchema.nullable().optional(), expectedEtcDigest: digestSchema.nullable().optional(), releaseId: idSchema.nullable().optional() });
  app.get('/v1/groups', { config: read, schema: { tags: ['admin'], summary: 'Groups' } }, async () => listGroups(ctx.fdb));
  app.post('/v1/groups', { config: write, schema: { tags: ['admin'], summary: 'Create a group', body: groupBody } }, async (req, reply) =>
    reply.status(201).send(await createGroup(ctx.fdb, req.body, actorOf(req), now())),
  );
  app.patch('/v1/groups/:name', { config: write, schema: { tags: ['admin'], summary: "Change a group's channel, expected /etc digest or release", params: z.object({ name: nameSchema }), body: groupBody.omit({ name: true }) } }, async (req) =>
    patchGroup(ctx.fdb, req.params.name, req.body, actorOf(req), now()),
  );

  app.get('/v1/releases', { config: read, schema: { tags: ['admin'], summary: 'Releases, newest first', querystring: z.object({ channel: nameSchema.optional() }) } }, async (req) => listReleases(ctx.fdb, req.query.channel));
  app.post(
    '/v1/releases',
    { config: write, schema: { tags: ['admin'], summary: 'Create a release', body: z.object({ channel: nameSchema, commit: commitSchema, version: z.string().min(1).max(128), notes: z.string().max(16384).optional() }) } },
    async (req, reply) => reply.status(201).send(await createRelease(ctx.fdb, req.body, actorOf(req), now())),
  );

  app.get('/v1/rollouts', { config: read, schema: { tags: ['admin'], summary: 'Rollouts, newest first', querystring: z.object({ group: nameSchema.optional() }) } }, async (req) => listRollouts(ctx.fdb, now(), req.query.group));
  app.post('/v1/rollouts', { config: write, schema: { tags: ['admin'], summary: 'Start a rollout of a release to a group', body: rolloutBody } }, async (req, reply) => {
    const id = await createRollout(ctx.fdb, req.body, actorOf(req), now());
    return reply.status(201).send(await getRollout(ctx.fdb, id, now()));
  });
  app.get('/v1/rollouts/:id', { config: read, schema: { tags: ['admin'], summary: 'A rollout with per-wave figures', params: z.object({ id: idSchema }) } }, async (req) =>
    getRollout(ctx.fdb, req.params.id, now()),
  );
  for (const action of ['pause', 'resume', 'abort', 'rollback'] as const) {
    app.post(
      `/v1/rollouts/:id/${action}`,
      { config: write, schema: { tags: ['admin'], summary: `${action[0].toUpperCase()}${action.slice(1)} a rollout`, params: z.object({ id: idSchema }), body: z.object({ reason: z.string().max(1024).optional() }).optional() } },
      async (req) => {
        const id = await rolloutAction(ctx.fdb, req.params.id, action, actorOf(req), now(), req.body?.reason);
        return getRollout(ctx.fdb, id, now());
      },
    );
  }

  const deviceQuery = z.object({
    label: z.union([z.string().max(200), z.array(z.string().max(200)).max(8)]).optional(),
    state: z.string().max(32).optional(),
    group: nameSchema.optional(),
    version: z.string().max(128).optional(),
    limit: z.coerce.number().int().min(1).max(5000).optional(),
    offset: z.coerce.number().int().min(0).optional(),
  });
  app.get('/v1/devices', { config: read, schema: { tags: ['admin'], summary: 'Devices, filtered by label (k=v), state, group, version', querystring: deviceQuery } }, async (req) => {
    const q = req.query;
    return listDevices(ctx.fdb, { ...q, label: q.label === undefined ? [] : Array.isArray(q.label) ? q.label : [q.label] });
  });
  app.get('/v1/devices/:id', { config: read, schema: { tags: ['admin'], summary: 'A device with its deployments, health, verify and history', params: z.object({ id: idSchema }) } }, async (req) =>
    getDevice(ctx.fdb, req.params.id),
  );
  app.patch('/v1/devices/:id', { config: write, schema: { tags: ['admin'], summary: "Move a device to another group or set its labels", params: z.object({ id: idSchema }), body: z.object({ group: nameSchema.optional(), labels: labelsSchema.optional() }) } }, async (req) =>
    patchDevice(ctx.fdb, req.params.id, req.body, actorOf(req), now()),
  );
  app.post('/v1/devices/:id/rollback', { config: write, schema: { tags: ['admin'], summary: 'Send this device back to its previous deployment', params: z.object({ id: idSchema }) } }, async (req) =>
    rollbackDevice(ctx.fdb, req.params.id, actorOf(req), now()),
  );

  app.get('/v1/overview', { config: read, schema: { tags: ['admin'], summary: 'Fleet counts' } }, async () => overview(ctx.fdb, now()));
  app.get('/v1/drift', { config: read, schema: { tags: ['admin'], summary: 'Devices that drift, with the reasons' } }, async () => driftReport(ctx.fdb, now()));
  app.get('/v1/fleetlock', { config: read, schema: { tags: ['admin'], summary: 'Reboot slots held (FleetLock)' } }, async () => listLocks(ctx.fdb));

  app.get(
    '/v1/audit',
    {
      config: read,
      schema: {
        tags: ['audit'],
        summary: 'Audit log entries, newest first',
        querystring: z.object({ device: idSchema.optional(), action: z.string().max(64).optional(), since: isoTime.optional(), until: isoTime.optional(), limit: z.coerce.number().int().min(1).max(5000).optional() }),

      },
    },
    async (req) => listAudit(ctx.fdb, { ...req.query, since: iso(req.query.since), until: iso(req.query.until) }),
  );
  app.get('/v1/audit/verify', { config: read, schema: { tags: ['audit'], summary: 'Recompute the hash chain' } }, async () => verifyAudit(ctx.fdb));
  app.get(
    '/v1/audit/at',
    { config: read, schema: { tags: ['audit'], summary: 'What commit a device ran at a time', querystring: z.object({ device: idSchema, time: isoTime }) } },
    async (req) => {
      const d = await ctx.fdb.db.selectFrom('devices').select('id').where('id', '=', req.query.device).executeTakeFirst();
      if (!d) throw new StrataError('FLEET_NOT_FOUND', `no device '${req.query.device}'`);
      return commitAt(ctx.fdb, req.query.device, iso(req.query.time)!);
    },
  );

  app.post(
    '/v1/tokens',
    { config: write, schema: { tags: ['admin'], summary: 'Create an admin or viewer token (shown once)', body: z.object({ name: nameSchema, role: z.enum(['admin', 'viewer']) }) } },
    async (req, reply) => reply.status(201).send(await createAdminToken(ctx.fdb, { ...req.body, actor: actorOf(req), now: now() })),
  );
  app.post(
    '/v1/enrollment-tokens',
    {
      config: write,
      schema: {
        tags: ['admin'],
        summary: 'Create an enrollment token (shown once)',
        body: z.object({ group: nameSchema.optional(), reusable: z.boolean().optional(), labels: labelsSchema.optional(), expiresAt: isoTime.nullable().optional() }),

      },
    },
    async (req, reply) => reply.status(201).send(await createEnrollmentToken(ctx.fdb, { ...req.body, expiresAt: iso(req.body.expiresAt ?? undefined), actor: actorOf(req), now: now() })),
  );
}

/** Times compare as text in the database: normalise to toISOString's form. */
function iso(t: string | undefined): string | undefined {
  return t === undefined ? undefined : new Date(t).toISOString();
}
