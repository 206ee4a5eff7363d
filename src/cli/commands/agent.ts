import { type Command, Option } from 'commander';
import { StrataError } from '../../errors.js';
import { out, parseIntFlag, printJson } from '../output.js';

interface RunFlags {
  server?: string;
  token?: string;
  once?: boolean;
  strategy: string;
  window?: string;
  sysroot: string;
  booted?: string;
  state: string;
  rebootCommand: string;
  reboot: boolean;
  poll?: string;
  remoteName: string;
  signVerify?: string;
  verify: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  const agent = program.command('agent').description('the device agent of a fleet server: enroll, then poll, stage, reboot and report');

  agent
    .command('run')
    .description('poll the fleet server and apply what it says: pull and stage the commit, reboot by the strategy, report the outcome after the boot')
    .addOption(new Option('--server <url>', 'fleet server (default: the one enrolled with)').env('STRATA_AGENT_SERVER'))
    .addOption(new Option('--token <token>', 'device token (default: the one enrolled with)').env('STRATA_AGENT_TOKEN'))
    .option('--once', 'one step: act until there is nothing to do now, then exit')
    .addOption(new Option('--strategy <s>', 'when to reboot into a staged update').choices(['immediate', 'window', 'fleet-lock']).default('immediate'))
    .option('--window <spec>', 'reboot window for --strategy window, e.g. "mon,tue,wed,thu,fri 02:00-05:00 Europe/Paris" (one the server sends wins)')
    .option('--sysroot <dir>', 'the sysroot', '/')
    .addOption(new Option('--booted <path>', 'the booted deployment (its directory or ostree= path)').env('STRATA_BOOTED'))
    .option('--state <file>', 'state file (device id, token, progress; mode 0600)', '/var/lib/strata/agent.json')
    .option('--reboot-command <cmd>', 'what reboots the device', 'systemctl reboot')
    .option('--no-reboot', 'never run a reboot command, only record that one is due')
    .option('--poll <seconds>', 'seconds between polls when the server does not say')
    .option('--remote-name <name>', 'the remote configured in the sysroot repo for the server\'s repository', 'fleet')
    .option('--sign-verify <key>', 'public key (file or base64): pulled commits must carry its ed25519 signature')
    .option('--no-verify', 'do not re-hash the booted deployment for reports')
    .option('--json', 'print what the step did as JSON')
    .action(async (o: RunFlags) => {
      const { agentRun } = await import('../../fleet/agent/agent.js');
      const { parseWindow } = await import('../../fleet/agent/window.js');
      const window = o.window !== undefined ? parseWindow(o.window) : null;
      if (o.strategy === 'window' && !window) process.stderr.write('strata: warning: --strategy window without --window reboots only inside windows the server sends\n');
      const controller = new AbortController();
      const stop = () => controller.abort();
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      const quiet = o.json || o.once;
      try {
        const r = await agentRun({
          sysroot: o.sysroot,
          booted: o.booted,
          stateFile: o.state,
          server: o.server,
          token: o.token,
          once: o.once,
          signal: controller.signal,
          config: { strategy: o.strategy as 'immediate', window, ...(o.poll !== undefined ? { pollSeconds: parseIntFlag('--poll', o.poll, 1) } : {}) },
          rebootCommand: o.reboot ? o.rebootCommand.split(/\s+/).filter(Boolean) : null,
          remoteName: o.remoteName,
          signVerify: o.signVerify,
          noVerify: !o.verify,
          log: quiet ? undefined : (line) => process.stderr.write(`strata agent: ${line}\n`),
        });
        const { token: _token, ...state } = r.state;
        if (o.json) return printJson({ ...r, state });
        for (const a of r.actions) out(a);
        if (r.reportsSent.length) out(`reported: ${r.reportsSent.join(', ')}`);
        out(`phase: ${r.phase}${r.state.outbox.length ? ` (${r.state.outbox.length} report${r.state.outbox.length === 1 ? '' : 's'} not sent yet)` : ''}`);
      } finally {
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
      }
    });

  agent
    .command('enroll')
    .description('enroll this device with a fleet server; the device id and token go into the state file (mode 0600)')
    .requiredOption('--server <url>', 'fleet server, e.g. http://fleet.example:8080')
    .addOption(new Option('--enrollment-token <token>', 'enrollment token from the fleet admin').env('STRATA_ENROLLMENT_TOKEN').makeOptionMandatory())
    .requiredOption('--name <name>', 'device name')
    .option('--labels <k=v,...>', 'labels, e.g. site=lyon,rack=3')
    .option('--machine-id <id>', 'default: /etc/machine-id')
    .option('--state <file>', 'state file', '/var/lib/strata/agent.json')
    .option('--force', 'enroll again although the state file names a device')
    .option('--json', 'print JSON')
    .action(async (o: { server: string; enrollmentToken: string; name: string; labels?: string; machineId?: string; state: string; force?: boolean; json?: boolean }) => {
      const { agentEnroll, parseLabels } = await import('../../fleet/agent/agent.js');
      const r = await agentEnroll({ server: o.server, enrollmentToken: o.enrollmentToken, name: o.name, labels: parseLabels(o.labels), machineId: o.machineId, stateFile: o.state, force: o.force });
      if (o.json) return printJson(r);
      out(`Enrolled as ${r.deviceId}${r.group ? ` in group ${r.group}` : ''}; credentials in ${r.stateFile}`);
    });

  agent
    .command('etc-digest')
    .description('print the /etc digest the agent reports (of DIR, or of the booted deployment\'s /etc)')
    .argument('[dir]', 'a directory (default: the booted deployment\'s etc)')
    .option('--sysroot <dir>', 'the sysroot', '/')
    .addOption(new Option('--booted <path>', 'the booted deployment (its directory or ostree= path)').env('STRATA_BOOTED'))
    .option('--json', 'print JSON')
    .action(async (dir: string | undefined, o: { sysroot: string; booted?: string; json?: boolean }) => {
      const fs = await import('node:fs');
      const path = await import('node:path');
      const { etcDigestOfDir } = await import('../../fleet/agent/etc-digest.js');
      let target = dir;
      if (target === undefined) {
        const { Sysroot } = await import('../../sysroot/sysroot.js');
        const sysroot = Sysroot.open(o.sysroot);
        const d = sysroot.booted(sysroot.deployments(), o.booted);
        if (!d) throw new StrataError('NOT_BOOTED', `no booted deployment in ${sysroot.path}; give a directory or --booted PATH`, {});
        target = path.join(sysroot.deploymentDir(d), 'etc');
      }
      if (!fs.statSync(target, { throwIfNoEntry: false })?.isDirectory()) throw new StrataError('USAGE', `${target} is not a directory`, { dir: target });
      const digest = etcDigestOfDir(target);
      if (o.json) return printJson({ dir: path.resolve(target), etcDigest: digest });
      out(digest);
    });
}
