import { type Command, Option } from 'commander';
import { ERROR_CODES, StrataError } from '../../errors.js';
import { formatBytes, out, parseIntFlag, printJson, progress, table } from '../output.js';

interface SysrootFlags {
  sysroot: string;
  booted?: string;
  json?: boolean;
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** --sysroot, --booted and --json, on every admin subcommand. */
function sysrootCommand(parent: Command, name: string, description: string): Command {
  return parent
    .command(name)
    .description(description)
    .option('--sysroot <dir>', 'the sysroot to act on', '/')
    .addOption(new Option('--booted <path>', 'the booted deployment (its directory or ostree= path); default: from /proc/cmdline when the sysroot is /').env('STRATA_BOOTED'))
    .option('--json', 'print JSON');
}

function shortId(d: { stateroot: string; checksum: string; serial: number }): string {
  return `${d.stateroot} ${d.checksum.slice(0, 12)}.${d.serial}`;
}

export function register(program: Command): void {
  const admin = program.command('admin').description('manage deployments on a device: deploy, status, rollback, cleanup, verify');

  admin
    .command('init-fs')
    .description("create an empty sysroot in OSTree's layout (ostree/repo in bare-user mode, boot/loader)")
    .argument('<dir>', 'directory to make a sysroot')
    .option('--json', 'print JSON')
    .action(async (dir: string, o: { json?: boolean }) => {
      const { initFs } = await import('../../sysroot/init.js');
      const r = initFs({ dir });
      if (o.json) return printJson(r);
      out(`${r.created ? 'Created' : 'Already a'} sysroot ${r.sysroot}`);
    });

  sysrootCommand(admin, 'os-init', 'create a stateroot: its deploy/ directory and its /var')
    .argument('<stateroot>', 'name, e.g. debian')
    .action(async (stateroot: string, o: SysrootFlags) => {
      const { osInit } = await import('../../sysroot/init.js');
      const r = osInit({ sysroot: o.sysroot, stateroot });
      if (o.json) return printJson(r);
      out(`${r.created ? 'Created' : 'Already have'} stateroot ${r.stateroot} (${r.path})`);
    });

  sysrootCommand(admin, 'deploy', 'deploy a commit: check it out by hardlinks, merge /etc, write its boot entry and make it the default')
    .argument('<rev>', 'ref or commit in the sysroot repo')
    .option('--os <stateroot>', 'stateroot (default: the booted one, or the only one)')
    .option('--karg <k=v>', 'set a kernel argument, replacing others with the same name (repeatable)', collect)
    .option('--karg-append <k=v>', 'append a kernel argument (repeatable)', collect)
    .option('--karg-none', 'start from no kernel arguments instead of the current deployment\'s')
    .option('--stage', 'prepare now; switch at shutdown (admin finalize-staged)')
    .option('--not-as-default', 'add the deployment without making it the default')
    .option('--retain <n>', 'keep N more old deployments than booted, default, rollback and pinned')
    .option('--boot-tries <n>', 'boot-counting tries for the new default (default: [sysroot] boot-counting-tries)')
    .option('--dry-run', 'show the plan, change nothing')
    .action(async (rev: string, o: SysrootFlags & { os?: string; karg?: string[]; kargAppend?: string[]; kargNone?: boolean; stage?: boolean; notAsDefault?: boolean; retain?: string; bootTries?: string; dryRun?: boolean }) => {
      const { deploy } = await import('../../sysroot/deploy.js');
      const r = await deploy({
        sysroot: o.sysroot,
        booted: o.booted,
        rev,
        stateroot: o.os,
        kargs: { set: o.karg, append: o.kargAppend },
        kargsReplaceAll: o.kargNone ? [] : undefined,
        stage: o.stage,
        notAsDefault: o.notAsDefault,
        retain: o.retain !== undefined ? parseIntFlag('--retain', o.retain) : undefined,
        bootTries: o.bootTries !== undefined ? parseIntFlag('--boot-tries', o.bootTries) : undefined,
        dryRun: o.dryRun,
      });
      if (o.json) return printJson(r);
      const d = r.deployment;
      const what = `${shortId(d)}${d.version ? ` (version ${d.version})` : ''}`;
      if (r.dryRun) out(`Would deploy ${what}${r.staged ? ', staged' : ` as deployment ${d.index}`}`);
      else if (r.staged) out(`Staged ${what}; it becomes the default at shutdown (admin finalize-staged)`);
      else out(`Deployed ${what} as deployment ${d.index}${d.index === 0 ? ' (default)' : ''}`);
      if (r.kargs.length) out(`Kernel arguments: ${r.kargs.join(' ')}`);
      for (const c of r.etc?.conflicts ?? []) process.stderr.write(`warning: /etc conflict kept the local file: ${c.path} (${c.reason})\n`);
      for (const x of r.removed) out(`Removed deployment ${x}`);
    });

  sysrootCommand(admin, 'finalize-staged', 'make the staged deployment the default, merging /etc now (run at shutdown)')
    .action(async (o: SysrootFlags) => {
      const { finalizeStaged } = await import('../../sysroot/manage.js');
      const r = await finalizeStaged({ sysroot: o.sysroot, booted: o.booted });
      if (o.json) return printJson(r);
      out(r.finalized ? `Finalized staged deployment ${r.finalized}` : 'No staged deployment');
      for (const c of r.etc?.conflicts ?? []) process.stderr.write(`warning: /etc conflict kept the local file: ${c.path} (${c.reason})\n`);
    });

  sysrootCommand(admin, 'status', 'list deployments: booted, default, rollback, staged, pinned, boot tries, health')
    .action(async (o: SysrootFlags) => {
      const { status } = await import('../../sysroot/status.js');
      const r = status({ sysroot: o.sysroot, booted: o.booted });
      if (o.json) return printJson(r);
      if (r.deployments.length === 0) return out(`No deployments in ${r.sysroot}; deploy one with 'strata admin deploy REF --sysroot ${r.sysroot}'`);
      for (const d of r.deployments) {
        const marks = [d.booted && 'booted', d.staged && 'staged', d.pending && 'pending', d.default && !d.pending && 'default', d.rollback && 'rollback', d.pinned && 'pinned', d.bad && 'BAD'].filter(Boolean);
        out(`${d.booted ? '*' : ' '} ${d.index ?? '-'} ${shortId(d)}${marks.length ? `  (${marks.join(', ')})` : ''}`);
        const rows: string[][] = [];
        if (d.version) rows.push(['Version:', `${d.version}${d.timestamp ? ` (${d.timestamp})` : ''}`]);
        if (d.origin) rows.push(['Origin:', d.origin]);
        if (d.triesLeft !== null) rows.push(['Boot tries left:', String(d.triesLeft)]);
        if (d.health) rows.push(['Health:', d.health.ok ? `ok (${d.health.at})` : `failed (${d.health.at}): ${d.health.failed.map((f) => `${f.name}: ${f.reason}`).join('; ')}`]);
        if (d.badReason) rows.push(['Bad:', d.badReason]);
        if (d.etcConflicts.length) rows.push(['/etc conflicts:', d.etcConflicts.map((c) => c.path).join(', ')]);
        if (d.kargs.length) rows.push(['Kernel args:', d.kargs.join(' ')]);
        if (d.layered) {
          rows.push(['Base commit:', d.layered.base]);
          if (d.layered.packages.length) rows.push(['Layered packages:', d.layered.packages.join(' ')]);
          if (d.layered.removed.length) rows.push(['Removed base paths:', d.layered.removed.join(' ')]);
          if (d.layered.transaction) rows.push(['Transaction:', d.layered.transaction]);
        }
        out(table(rows).replace(/^/gm, '      '));
      }
    });

  sysrootCommand(admin, 'rollback', 'make the previous deployment (or --to N|CHECKSUM) the default')
    .option('--to <which>', 'any kept deployment: index or checksum')
    .option('--dry-run', 'say what would change')
    .action(async (o: SysrootFlags & { to?: string; dryRun?: boolean }) => {
      const { rollback } = await import('../../sysroot/manage.js');
      const r = rollback({ sysroot: o.sysroot, booted: o.booted, to: o.to, dryRun: o.dryRun });
      if (o.json) return printJson(r);
      out(`${r.dryRun ? 'Would make' : 'Made'} ${shortId(r.default)} the default${r.previousDefault ? ` (was ${shortId(r.previousDefault)})` : ''}; reboot to use it`);
    });

  sysrootCommand(admin, 'set-default', 'make deployment N (index or checksum) the default')
    .argument('<which>', 'index or checksum')
    .option('--dry-run', 'say what would change')
    .action(async (which: string, o: SysrootFlags & { dryRun?: boolean }) => {
      const { setDefault } = await import('../../sysroot/manage.js');
      const r = setDefault({ sysroot: o.sysroot, booted: o.booted, which, dryRun: o.dryRun });
      if (o.json) return printJson(r);
      out(`${r.dryRun ? 'Would make' : 'Made'} ${shortId(r.default)} the default`);
    });

  sysrootCommand(admin, 'pin', 'keep a deployment through cleanups (--unpin to release it)')
    .argument('<which>', 'index or checksum')
    .option('--unpin', 'remove the pin')
    .action(async (which: string, o: SysrootFlags & { unpin?: boolean }) => {
      const { pin } = await import('../../sysroot/manage.js');
      const r = pin({ sysroot: o.sysroot, booted: o.booted, which, unpin: o.unpin });
      if (o.json) return printJson(r);
      out(`${r.pinned ? 'Pinned' : 'Unpinned'} ${r.deployment}`);
    });

  sysrootCommand(admin, 'undeploy', 'remove a deployment (not the booted, a pinned, or the only one)')
    .argument('<which>', 'index or checksum')
    .option('--dry-run', 'say what would change')
    .action(async (which: string, o: SysrootFlags & { dryRun?: boolean }) => {
      const { undeploy } = await import('../../sysroot/manage.js');
      const r = undeploy({ sysroot: o.sysroot, booted: o.booted, which, dryRun: o.dryRun });
      if (o.json) return printJson(r);
      out(`${r.dryRun ? 'Would remove' : 'Removed'} deployment ${r.removed}`);
    });

  sysrootCommand(admin, 'cleanup', 'apply retention, delete unreferenced deployments and kernels, prune the repository')
    .option('--retain <n>', 'keep N more old deployments than booted, default, rollback and pinned')
    .option('--no-prune', 'do not prune repository objects')
    .option('--dry-run', 'say which deployments would go')
    .action(async (o: SysrootFlags & { retain?: string; prune?: boolean; dryRun?: boolean }) => {
      const { cleanup } = await import('../../sysroot/manage.js');
      const r = cleanup({ sysroot: o.sysroot, booted: o.booted, retain: o.retain !== undefined ? parseIntFlag('--retain', o.retain) : undefined, prune: o.prune, dryRun: o.dryRun });
      if (o.json) return printJson(r);
      if (r.dryRun) return out(r.dropped.length ? `Would remove ${r.dropped.join(', ')}` : 'Nothing to remove');
      out(`Removed ${r.deployments.length} deployment director${r.deployments.length === 1 ? 'y' : 'ies'}, ${r.kernels.length} kernel director${r.kernels.length === 1 ? 'y' : 'ies'}; pruned ${r.prunedObjects} objects (${formatBytes(r.freedBytes)})`);
    });

  sysrootCommand(admin, 'kargs', 'show kernel arguments, or edit them (a new deployment of the same commit)')
    .option('--append <k=v>', 'add an argument (repeatable)', collect)
    .option('--delete <k[=v]>', 'remove an argument (repeatable)', collect)
    .option('--replace <k=v|k=old=new>', 'replace an argument (repeatable)', collect)
    .option('--stage', 'stage the new deployment')
    .action(async (o: SysrootFlags & { append?: string[]; delete?: string[]; replace?: string[]; stage?: boolean }) => {
      const { changeKargs } = await import('../../sysroot/manage.js');
      const r = await changeKargs({ sysroot: o.sysroot, booted: o.booted, edits: { append: o.append, delete: o.delete, replace: o.replace }, stage: o.stage });
      if (o.json) return printJson(r);
      if (r.deployed) out(`Deployed ${shortId(r.deployed)} with kernel arguments: ${r.kargs.join(' ')}`);
      else out(r.kargs.join(' '));
    });

  sysrootCommand(admin, 'verify', 'tamper detection: re-hash a deployment against its commit (outside /etc and /var)')
    .argument('[which]', 'index or checksum (default: the booted deployment, else the default)')
    .action(async (which: string | undefined, o: SysrootFlags) => {
      const { verifyDeployment } = await import('../../sysroot/verify.js');
      const bar = await progress('verify', o);
      let r;
      try {
        r = await verifyDeployment({ sysroot: o.sysroot, booted: o.booted, which, onProgress: (d, t) => bar.update(d, t) });
      } finally {
        bar.stop();
      }
      if (!r.ok) process.exitCode = ERROR_CODES.VERIFY_FAILED.exit;
      if (o.json) return printJson(r);
      for (const d of r.differences) out(`${d.kind === 'added' ? 'A' : d.kind === 'removed' ? 'D' : 'M'}  ${d.path}${d.what ? `  (${d.what.join(', ')})` : ''}`);
      const summary = `${r.checked} entries, ${formatBytes(r.bytes)} checked in deployment ${r.index} (${r.deployment})`;
      if (r.ok) out(`Verified ${summary}: no differences`);
      else process.stderr.write(`strata: ${r.differences.length} difference${r.differences.length === 1 ? '' : 's'} from commit ${r.commit.slice(0, 12)} (${summary})\n`);
    });

  sysrootCommand(admin, 'prepare-root', 'mount a deployment as a read-only root with writable /etc and the stateroot /var')
    .option('--deployment <which>', 'index or checksum (default: the booted one, from --booted or ostree= in /proc/cmdline)')
    .option('--target <dir>', 'mount point for the new root (needed without a command)')
    .argument('[command...]', 'run this chrooted in a private mount namespace (after --)')
    .action(async (command: string[], o: SysrootFlags & { deployment?: string; target?: string }) => {
      const { prepareRoot } = await import('../../sysroot/prepare-root.js');
      const r = prepareRoot({ sysroot: o.sysroot, booted: o.booted, deployment: o.deployment, target: o.target, command });
      if (r.exitCode !== null) process.exitCode = r.exitCode;
      else if (o.json) printJson(r);
      else out(`Mounted ${r.deployment} at ${r.target} (read-only; /etc writable, /var from the stateroot)`);
    });

  type LayerResultOf = Awaited<ReturnType<typeof import('../../sysroot/layer.js').installPackages>>;
  const layerFlags = (c: Command): Command => c
    .option('--stage', 'prepare the new deployment now, make it the default at shutdown (the default)')
    .option('--apply-now', 'make the new deployment the default now (reboot to use it)')
    .option('--dry-run', 'show what would be layered, change nothing');
  type LayerFlags = SysrootFlags & { stage?: boolean; applyNow?: boolean; dryRun?: boolean };
  const layerOpts = (o: LayerFlags) => {
    if (o.stage && o.applyNow) throw new StrataError('USAGE', '--stage and --apply-now exclude each other');
    return { sysroot: o.sysroot, booted: o.booted, stage: !o.applyNow, dryRun: o.dryRun };
  };
  const printLayer = (r: LayerResultOf, o: LayerFlags, verb: string) => {
    if (o.json) return printJson(r);
    for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
    const what = [...r.added.map((x) => `+${x}`), ...r.removed.map((x) => `-${x}`)].join(' ') || '(no change)';
    if (r.dryRun) return out(`Would ${verb} ${what} on base ${r.base.slice(0, 12)}: packages [${r.after.packages.map((p) => p.name).join(', ')}], removed paths [${r.after.removals.join(', ')}]`);
    const d = r.deployment;
    out(`${verb[0].toUpperCase()}${verb.slice(1)} ${what}: ${d ? shortId(d) : ''} on base ${r.base.slice(0, 12)}`);
    for (const p of r.packages) out(`  ${p.package} ${p.version} (${p.architecture})`);
    out(r.staged ? 'Staged: it becomes the default at shutdown; reboot to use it' : 'Deployed as the default; reboot to use it');
  };

  layerFlags(sysrootCommand(admin, 'install', 'layer local .deb packages on the deployment: a new deployment of the base plus their files'))
    .argument('<deb...>', '.deb files')
    .action(async (files: string[], o: LayerFlags) => {
      const { installPackages } = await import('../../sysroot/layer.js');
      printLayer(await installPackages({ ...layerOpts(o), files }), o, 'install');
    });

  layerFlags(sysrootCommand(admin, 'uninstall', 'remove layered packages: a new deployment rebuilt from the base'))
    .argument('<name...>', 'package names, as admin status lists them')
    .action(async (names: string[], o: LayerFlags) => {
      const { uninstallPackages } = await import('../../sysroot/layer.js');
      printLayer(await uninstallPackages({ ...layerOpts(o), names }), o, 'uninstall');
    });

  const override = admin.command('override').description('hide base files in a derived deployment (kept through upgrades)');
  layerFlags(sysrootCommand(override, 'remove', 'a new deployment without these base paths'))
    .argument('<path...>', 'absolute paths of the base (/etc/x means the default config /usr/etc/x)')
    .action(async (paths: string[], o: LayerFlags) => {
      const { overrideRemove } = await import('../../sysroot/layer.js');
      printLayer(await overrideRemove({ ...layerOpts(o), paths }), o, 'remove');
    });
  layerFlags(sysrootCommand(override, 'reset', 'bring every removed base path back'))
    .action(async (o: LayerFlags) => {
      const { overrideReset } = await import('../../sysroot/layer.js');
      printLayer(await overrideReset(layerOpts(o)), o, 'reset');
    });

  sysrootCommand(admin, 'transaction', 'run a command in a writable copy of the deployment (chrooted, private mounts), commit and deploy the result')
    .option('--stage', 'stage the result instead of making it the default now')
    .argument('<command...>', 'the command and its arguments (after --)')
    .action(async (command: string[], o: SysrootFlags & { stage?: boolean }) => {
      const { runTransaction } = await import('../../sysroot/transaction.js');
      const r = await runTransaction({ sysroot: o.sysroot, booted: o.booted, command, stage: o.stage });
      if (o.json) return printJson(r);
      for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
      out(`Transaction exited 0; ${r.staged ? 'staged' : 'deployed'} ${shortId(r.deployment)} on base ${r.base.slice(0, 12)}${r.staged ? '' : ' as the default; reboot to use it'}`);
    });

  const upgradeAction = (switchTo: string | undefined) => async (o: SysrootFlags & { check?: boolean; downloadOnly?: boolean; stage: boolean; allowDowngrade?: boolean }) => {
    const { upgrade } = await import('../../sysroot/upgrade.js');
    const bar = await progress('pull', o);
    let r;
    try {
      r = await upgrade({ sysroot: o.sysroot, booted: o.booted, check: o.check, downloadOnly: o.downloadOnly, stage: o.stage, allowDowngrade: o.allowDowngrade, switchTo, onProgress: (p) => bar.update(p.done, p.total) });
    } finally {
      bar.stop();
    }
    // As rpm-ostree: --check exits 77 when there is nothing new.
    if (o.check && !r.available) process.exitCode = 77;
    if (o.json) return printJson(r);
    const v = (x: { checksum: string; version: string | null }) => `${x.checksum.slice(0, 12)}${x.version ? ` (version ${x.version})` : ''}`;
    const from = r.from ? v(r.from) : '(nothing deployed)';
    if (!r.available) return out(`No update: ${r.refspec} is still ${from}`);
    if (o.check) return out(`Update available on ${r.refspec}: ${from} -> ${v(r.to)}`);
    if (!r.deployed) return out(`Downloaded ${v(r.to)} from ${r.refspec}${r.pulled ? ` (${r.pulled.objects} objects, ${formatBytes(r.pulled.bytes)})` : ''}; not deployed (--download-only)`);
    const fetched = r.pulled ? `; fetched ${r.pulled.delta ? 'a static delta' : `${r.pulled.objects} objects`}, ${formatBytes(r.pulled.bytes)}` : '';
    out(`${switchTo ? 'Switched to' : 'Upgraded'} ${r.refspec}: ${from} -> ${v(r.to)}${fetched}`);
    for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
    if (r.layered) out(`Layered again on the new base: ${[...r.layered.packages, ...r.layered.removals.map((p) => `-${p}`)].join(' ')}`);
    if (r.changes) out(`Changes: ${r.changes.added} added, ${r.changes.removed} removed, ${r.changes.modified} modified, ${r.changes.metadata} metadata only`);
    out(r.deployed.staged ? 'Staged: it becomes the default at shutdown; reboot to use it' : 'Deployed as the default; reboot to use it');
  };

  sysrootCommand(admin, 'upgrade', "pull the booted deployment's origin ref, verify it, deploy it (staged) and say what changed")
    .option('--check', 'only report: exit 0 when an update is available, 77 when there is none')
    .option('--download-only', 'pull, do not deploy')
    .option('--no-stage', 'switch the default now instead of at shutdown')
    .option('--allow-downgrade', 'accept a commit older than the running one')
    .action(upgradeAction(undefined));

  sysrootCommand(admin, 'switch', 'follow another branch (REMOTE:REF, or a local ref): pull it and deploy it')
    .argument('<refspec>', 'REMOTE:REF')
    .option('--download-only', 'pull, do not deploy')
    .option('--no-stage', 'switch the default now instead of at shutdown')
    .option('--allow-downgrade', 'accept a commit older than the running one')
    .action((refspec: string, o: SysrootFlags & { downloadOnly?: boolean; stage: boolean; allowDowngrade?: boolean }) => upgradeAction(refspec)(o));
}
