import type { Command } from 'commander';
import { StrataError } from '../../errors.js';
import { out, parseIntFlag, printJson, table } from '../output.js';

const DB_HELP = 'fleet database: sqlite:PATH or postgres://… (default $STRATA_FLEET_DB or sqlite:./fleet.db)';

function parseTime(flag: string, value: string): string {
  const t = /^\d+$/.test(value) ? Number(value) * 1000 : Date.parse(value);
  if (Number.isNaN(t)) throw new StrataError('INVALID_TIMESTAMP', `${flag} '${value}' is neither ISO 8601 nor seconds since the epoch`);
  return new Date(t).toISOString();
}

function parseLabels(list: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const l of list) {
    const i = l.indexOf('=');
    if (i <= 0) throw new StrataError('USAGE', `--label needs key=value, got '${l}'`);
    labels[l.slice(0, i)] = l.slice(i + 1);
  }
  return labels;
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

export function register(program: Command): void {
  const fleet = program.command('fleet').description('the fleet server: devices, releases, rollouts, drift and the audit log');

  fleet
    .command('serve')
    .description('serve the fleet HTTP API (and, with --repo, the repository under /repo/)')
    .option('--db <url>', DB_HELP)
    .option('--repo <path>', 'archive repository to serve under /repo/')
    .option('--repo-url <url>', 'URL devices pull objects from instead (a CDN or another server)')
    .option('--port <n>', 'TCP port (0 picks a free one)', '8080')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--json', 'print {"url": …} once listening')
    .action(async (o: { db?: string; repo?: string; repoUrl?: string; port: string; host: string; json?: boolean }) => {
      const { serveFleet, dbUrl } = await import('../../fleet/server.js');
      if (o.repoUrl !== undefined && !/^https?:\/\/[^\s]+$/.test(o.repoUrl)) throw new StrataError('USAGE', `--repo-url must be an http or https URL, got '${o.repoUrl}'`);
      const server = await serveFleet({ db: dbUrl(o.db), repo: o.repo, repoUrl: o.repoUrl, port: parseIntFlag('--port', o.port), host: o.host });
      if (o.json) printJson({ url: server.url });
      else out(`Fleet server at ${server.url} (Ctrl-C stops)`);
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          void server.close().then(resolve);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });

  const token = fleet.command('token').description('admin API tokens');
  token
    .command('create')
    .description('create an admin or viewer token; it is printed once and stored hashed')
    .argument('<name>', 'a name for the token (who or what uses it)')
    .requiredOption('--role <role>', 'admin (everything) or viewer (read only)')
    .option('--db <url>', DB_HELP)
    .option('--json', 'print JSON')
    .action(async (name: string, o: { role: string; db?: string; json?: boolean }) => {
      if (o.role !== 'admin' && o.role !== 'viewer') throw new StrataError('USAGE', `--role takes admin or viewer, got '${o.role}'`);
      const { withFleetDb, dbUrl } = await import('../../fleet/server.js');
      const { createAdminToken } = await import('../../fleet/tokens.js');
      const t = await withFleetDb(dbUrl(o.db), (fdb) => createAdminToken(fdb, { name, role: o.role as 'admin' | 'viewer', actor: 'cli' }));
      if (o.json) return printJson(t);
      out(t.token);
      process.stderr.write(`Created ${t.role} token '${t.name}' (${t.id}); it is shown only now.\n`);
    });

  const enroll = fleet.command('enroll-token').description('device enrollment tokens');
  enroll
    .command('create')
    .description('create an enrollment token (one-time unless --reusable); printed once')
    .option('--group <name>', 'group of the devices it enrolls', 'default')
    .option('--reusable', 'any number of devices may enroll with it')
    .option('--label <key=value>', 'label given to enrolled devices (repeatable)', collect, [])
    .option('--expires <time>', 'refuse it after this time (ISO 8601)')
    .option('--db <url>', DB_HELP)
    .option('--json', 'print JSON')
    .action(async (o: { group: string; reusable?: boolean; label: string[]; expires?: string; db?: string; json?: boolean }) => {
      const { withFleetDb, dbUrl } = await import('../../fleet/server.js');
      const { createEnrollmentToken } = await import('../../fleet/tokens.js');
      const labels = parseLabels(o.label);
      const expiresAt = o.expires ? parseTime('--expires', o.expires) : null;
      const t = await withFleetDb(dbUrl(o.db), (fdb) => createEnrollmentToken(fdb, { group: o.group, reusable: o.reusable, labels, expiresAt, actor: 'cli' }));
      if (o.json) return printJson(t);
      out(t.token);
      process.stderr.write(`Created ${t.reusable ? 'reusable' : 'one-time'} enrollment token for group '${t.group}' (${t.id}); it is shown only now.\n`);
    });

  fleet
    .command('drift')
    .description("list devices whose booted commit, /etc or verify result differs from their group's")
    .option('--db <url>', DB_HELP)
    .option('--json', 'print JSON')
    .action(async (o: { db?: string; json?: boolean }) => {
      const { withFleetDb, dbUrl } = await import('../../fleet/server.js');
      const { driftReport } = await import('../../fleet/drift.js');
      const drift = await withFleetDb(dbUrl(o.db), (fdb) => driftReport(fdb, new Date()));
      if (o.json) return printJson(drift);
      if (drift.length === 0) return out('No device drifts.');
      const short = (s: string | null): string => (s === null ? '-' : /^[0-9a-f]{64}$/.test(s) ? s.slice(0, 12) : s);
      out(table([['DEVICE', 'NAME', 'GROUP', 'REASON'], ...drift.flatMap((d) => d.reasons.map((r) => [d.deviceId, d.name, d.group, `${r.kind}: expected ${short(r.expected)}, got ${short(r.actual)}`]))]));
    });

  const audit = fleet.command('audit').description('the audit log (a hash chain)');
  audit
    .command('verify')
    .description('recompute the hash chain; names the first entry altered or removed (exit 1)')
    .option('--db <url>', DB_HELP)
    .option('--json', 'print JSON')
    .action(async (o: { db?: string; json?: boolean }) => {
      const { withFleetDb, dbUrl } = await import('../../fleet/server.js');
      const { verifyAudit } = await import('../../fleet/audit.js');
      const res = await withFleetDb(dbUrl(o.db), (fdb) => verifyAudit(fdb));
      if (o.json) printJson(res);
      if (!res.ok) throw new StrataError('FLEET_AUDIT_BROKEN', `audit log broken at entry ${res.firstBad!.seq}: ${res.firstBad!.reason}`, { ...res.firstBad });
      if (!o.json) out(`Audit log intact: ${res.entries} entries.`);
    });
  audit
    .command('at')
    .description('what commit a device was booted in at a time')
    .argument('<device>', 'device id')
    .argument('<time>', 'ISO 8601 time or seconds since the epoch')
    .option('--db <url>', DB_HELP)
    .option('--json', 'print JSON')
    .action(async (device: string, time: string, o: { db?: string; json?: boolean }) => {
      const { withFleetDb, dbUrl } = await import('../../fleet/server.js');
      const { commitAt } = await import('../../fleet/audit.js');
      const at = parseTime('TIME', time);
      const res = await withFleetDb(dbUrl(o.db), async (fdb) => {
        const d = await fdb.db.selectFrom('devices').select('id').where('id', '=', device).executeTakeFirst();
        if (!d) throw new StrataError('FLEET_NOT_FOUND', `no device '${device}'`);
        return commitAt(fdb, device, at);
      });
      if (o.json) return printJson({ device, time: at, ...res });
      if (res.commit === null) return out(`${device} ran no known commit at ${at}`);
      out(`${device} ran ${res.commit}${res.version ? ` (${res.version})` : ''} at ${at}, since ${res.since}`);
    });
}
