import { type Command, Option } from 'commander';
import { ERROR_CODES } from '../../errors.js';
import { out, parseIntFlag, printJson } from '../output.js';

export function register(program: Command): void {
  const health = program.command('health').description('health checks that bless a boot or roll it back');
  health
    .command('run')
    .description('run the booted deployment\'s health checks (etc/ and usr/lib/strata/health.d/{required,wanted}.d); bless the boot or ask for a reboot')
    .option('--sysroot <dir>', 'the sysroot', '/')
    .addOption(new Option('--booted <path>', 'the booted deployment (its directory or ostree= path)').env('STRATA_BOOTED'))
    .option('--timeout <seconds>', 'per check', '300')
    .option('--reboot-command <cmd>', 'run after a failed required check while the boot is being counted', 'systemctl reboot')
    .option('--no-reboot', 'only report that a reboot is needed')
    .option('--json', 'print JSON')
    .action(async (o: { sysroot: string; booted?: string; timeout: string; rebootCommand: string; reboot: boolean; json?: boolean }) => {
      const { healthRun } = await import('../../sysroot/health.js');
      const r = await healthRun({
        sysroot: o.sysroot,
        booted: o.booted,
        timeoutMs: parseIntFlag('--timeout', o.timeout, 1) * 1000,
        rebootCommand: o.reboot ? o.rebootCommand.split(/\s+/).filter(Boolean) : null,
      });
      if (!r.ok) process.exitCode = ERROR_CODES.HEALTH_FAILED.exit;
      if (o.json) return printJson(r);
      if (r.rolledBack) out(`Boot fell back: ${r.rolledBack.from} used up its tries and is marked bad; ${r.rolledBack.to} is the default again`);
      for (const c of r.report.checks) out(`${c.ok ? 'ok  ' : c.kind === 'required' ? 'FAIL' : 'warn'}  ${c.kind.padEnd(8)} ${c.name}${c.reason ? `: ${c.reason}` : ''}`);
      if (r.ok) out(r.blessed ? `Healthy: boot of ${r.deployment} blessed` : `Healthy: ${r.deployment}`);
      else process.stderr.write(`strata: required health check failed on ${r.deployment}${r.rebootRequested ? (r.rebooted ? '; rebooting' : '; a reboot is needed (the bootloader tries again or falls back)') : '; no boot counting on this entry, so no automatic rollback: use strata admin rollback'}\n`);
    });
}
