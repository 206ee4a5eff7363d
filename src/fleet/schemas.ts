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

// Answers of the admin API, for the OpenAPI document (the dashboard codes
// against them) and for the tests, which check real answers against them.
const nullableString = z.string().nullable();
export const channelView = z.object({ name: z.string(), ref: z.string(), createdAt: z.string() });
export const groupView = z.object({ name: z.string(), channel: nullableString, expectedEtcDigest: nullableString, releaseId: nullableString, createdAt: z.string() });
export const releaseView = z.object({ id: z.string(), channel: z.string(), commit: z.string(), version: z.string(), notes: z.string(), createdAt: z.string() });
export const rolloutView = z.object({
  id: z.string(),
  releaseId: z.string(),
  commit: z.string(),
  version: z.string(),
  group: z.string(),
  kind: z.enum(['forward', 'rollback']),
  state: z.enum(['active', 'paused', 'completed', 'aborted', 'rolled-back']),
  pausedReason: nullableString,
  currentWave: z.number(),
  waves: z.array(z.object({ percent: z.number(), soakSeconds: z.number(), startedAt: nullableString, completedAt: nullableString, devices: z.number(), updated: z.number(), healthy: z.number(), failed: z.number() })),
  maxConcurrent: z.number(),
  window: windowSchema.nullable(),
  failureThreshold: z.number(),
  graceSeconds: z.number(),
  previousReleaseId: nullableString,
  failureHistory: z.array(z.object({ at: z.string(), wave: z.number(), rate: z.number() })),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export const auditEntryView = z.object({
  seq: z.number(), at: z.string(), actor: z.string(), action: z.string(), subject: z.string(), before: z.unknown(), after: z.unknown(), prevHash: z.string(), hash: z.string(),
});
export const deviceView = z.object({
  id: z.string(),
  name: z.string(),
  machineId: nullableString,
  group: z.string(),
  labels: z.record(z.string(), z.string()),
  state: nullableString,
  lastSeen: nullableString,
  enrolledAt: z.string(),
  booted: z.object({ commit: nullableString, version: nullableString }),
  stagedCommit: nullableString,
  etcDigest: nullableString,
  health: z.object({ ok: z.boolean(), failed: z.array(z.string()), at: z.string() }).nullable(),
  verify: z.object({ ok: z.boolean(), modified: z.number(), added: z.number(), removed: z.number(), at: z.string() }).nullable(),
  deployments: z.array(deploymentSchema),
  overrideCommit: nullableString,
});
export const deviceDetailView = deviceView.extend({ history: z.array(auditEntryView) });
export const driftView = z.array(
  z.object({ deviceId: z.string(), name: z.string(), group: z.string(), reasons: z.array(z.object({ kind: z.enum(['commit', 'etc', 'tampered']), expected: nullableString, actual: nullableString })) }),
);
const counts = z.record(z.string(), z.number());
export const overviewView = z.object({
  devices: z.number(), byVersion: counts, byGroup: counts, byState: counts, byChannel: counts,
  healthy: z.number(), updating: z.number(), failed: z.number(), drifting: z.number(), offline: z.number(),
});
export const auditVerifyView = z.object({ ok: z.boolean(), entries: z.number(), firstBad: z.object({ seq: z.number(), reason: z.string() }).optional() });
export const ranAtView = z.object({ commit: nullableString, version: nullableString, since: nullableString });
export const lockView = z.array(z.object({ group: z.string(), holder: z.string(), acquiredAt: z.string() }));
export const createdTokenView = z.object({ id: z.string(), name: z.string(), role: z.enum(['admin', 'viewer']), token: z.string() });
export const createdEnrollmentTokenView = z.object({ id: z.string(), token: z.string(), group: z.string(), reusable: z.boolean(), labels: z.record(z.string(), z.string()), expiresAt: nullableString });
