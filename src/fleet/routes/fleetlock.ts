// FleetLock endpoints for Zincati: POST /v1/pre-reboot and /v1/steady-state
// with the header `fleet-lock-protocol: true` and {client_params: {id, group}}.
// Errors are FleetLock's own {kind, value} body, not the fleet error shape.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { preReboot, steadyState, type LockResult } from '../fleetlock.js';
import type { FleetContext } from '../app.js';

const ID = /^[A-Za-z0-9_.-]{1,128}$/;

function parse(req: FastifyRequest): { id: string; group: string } | { kind: string; value: string } {
  if (String(req.headers['fleet-lock-protocol'] ?? '').toLowerCase() !== 'true') return { kind: 'missing_header', value: 'the header fleet-lock-protocol: true is required' };
  const body = req.body as { client_params?: { id?: unknown; group?: unknown } } | null;
  const p = body && typeof body === 'object' ? body.client_params : undefined;
  if (!p || typeof p.id !== 'string' || !ID.test(p.id)) return { kind: 'bad_request', value: 'client_params.id must be a device id or machine id' };
  const group = p.group === undefined ? 'default' : p.group;
  if (typeof group !== 'string' || !ID.test(group)) return { kind: 'bad_request', value: 'client_params.group must be a group name' };
  return { id: p.id, group };
}

export function registerFleetLockRoutes(app: FastifyInstance, ctx: FleetContext): void {
  const handle = (op: typeof preReboot) => async (req: FastifyRequest, reply: FastifyReply) => {
    const p = parse(req);
    if ('kind' in p) return reply.status(400).send(p);
    const res: LockResult = await op(ctx.fdb, p.id, p.group, ctx.now());
    if (res.ok) return reply.status(200).send({});
    return reply.status(res.status).send({ kind: res.kind, value: res.value });
  };
  const schema = { tags: ['fleetlock'], summary: 'FleetLock (Zincati) reboot slot', security: [] };
  app.post('/v1/pre-reboot', { schema: { ...schema, summary: 'FleetLock RecursiveLock: take a reboot slot' } }, handle(preReboot));
  app.post('/v1/steady-state', { schema: { ...schema, summary: 'FleetLock UnlockIfHeld: give the slot back' } }, handle(steadyState));
}
