// Shapes shared by the routes: the request and answer schemas of the fleet
// API (docs/fleet-api.md), as zod schemas that validate and document.

import { z } from 'zod';
import { DAYS, isValidTimeZone } from './rollout-policy.js';

export const commitSchema = z.string().regex(/^[0-9a-f]{64}$/, 'a commit is 64 lowercase hex characters');
export const digestSchema = z.string().regex(/^[0-9a-f]{64}$/, 'a digest is 64 lowercase hex characters');
export const nameSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, '1-64 letters, digits, ".", "_" or "-", starting with a letter or digit');
export const idSchema = z.string().regex(/^[a-z]{2,4}_[A-Za-z0-9]{1,32}$/, 'an id like dev_… or ro_…');
export const labelsSchema = z
  .record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/, 'label keys: letters, digits, ".", "_", "/", "-"'), z.string().max(128))
  .refine((l) => Object.keys(l).length <= 32, 'at most 32 labels');
export const tokenSchema = z.string().regex(/^[A-Za-z0-9_-]{16,128}$/, 'a token is base64url text');
export const isoTime = z.iso.datetime({ offset: true });
export const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

export const windowSchema = z.object({
  days: z.array(z.enum(DAYS)).min(1).max(7),
  start: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'HH:MM'),
  end: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'HH:MM'),
  timeZone: z.string().max(64).refine(isValidTimeZone, 'an IANA time zone such as Europe/Paris'),
});

export const enrollBody = z.object({
  enrollmentToken: tokenSchema,
  name: nameSchema,
  machineId: z.string().regex(/^[0-9a-f]{32}$/, 'a machine id is 32 lowercase hex characters').optional(),
  labels: labelsSchema.optional(),
});

export const nextAnswer = z.union([
  z.object({ action: z.literal('none'), reason: z.enum(['up-to-date', 'not-in-wave', 'outside-window', 'concurrency', 'paused', 'no-rollout', 'held']), pollAfterSeconds: z.number() }),
  z.object({
    action: z.literal('deploy'),
    rolloutId: z.string().nullable(),
    releaseId: z.string().nullable(),
    commit: z.string(),
    version: z.string().nullable(),
    ref: z.string().nullable(),
    repoUrl: z.string().nullable(),
    allowDowngrade: z.boolean(),
    pollAfterSeconds: z.number(),
  }),
]);

export const deploymentSchema = z.object({
  index: z.number().int().min(0).max(64),
  commit: commitSchema,
  version: z.string().max(128).nullable().optional(),
  booted: z.boolean().optional(),
  default: z.boolean().optional(),
  rollback: z.boolean().optional(),
  pinned: z.boolean().optional(),
  staged: z.boolean().optional(),
  health: z.enum(['blessed', 'failed', 'pending']).nullable().optional(),
});

export const reportBody = z.object({
  deviceId: idSchema.optional(),
  state: z.enum(['checking', 'downloading', 'staged', 'rebooting', 'booted', 'healthy', 'unhealthy', 'rolled-back']),
  rolloutId: idSchema.optional(),
  commit: commitSchema.optional(),
  details: z.string().max(4096).optional(),
  booted: z.object({ commit: commitSchema, version: z.string().max(128).nullable().optional() }).optional(),
  staged: z.object({ commit: commitSchema }).nullable().optional(),
  deployments: z.array(deploymentSchema).max(32).optional(),
  etcDigest: digestSchema.optional(),
  verify: z.object({ ok: z.boolean(), modified: z.number().int().min(0), added: z.number().int().min(0), removed: z.number().int().min(0), at: isoTime.optional() }).optional(),
  health: z.object({ ok: z.boolean(), failed: z.array(z.string().max(256)).max(64), at: isoTime.optional() }).optional(),
});

export const waveSchema = z.object({ percent: z.number().gt(0).max(100), soakSeconds: z.number().int().min(0).max(90 * 86400) });

export const rolloutBody = z.object({
  releaseId: idSchema,
  group: nameSchema,
  waves: z.array(waveSchema).min(1).max(20).default([{ percent: 1, soakSeconds: 3600 }, { percent: 10, soakSeconds: 3600 }, { percent: 50, soakSeconds: 3600 }, { percent: 100, soakSeconds: 0 }]),
  maxConcurrent: z.number().int().min(1).max(1_000_000).default(10),
  window: windowSchema.nullable().optional(),
  failureThreshold: z.number().min(0).max(1).default(0.05),
  graceSeconds: z.number().int().min(0).max(90 * 86400).default(86400),
});
