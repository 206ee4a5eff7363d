import type { Command } from 'commander';
import { out, printJson, requireRepo, table } from '../output.js';

export function register(program: Command): void {
  const remote = program.command('remote').description('manage remotes (in the repository config, as ostree keeps them)');
  // commander stores --sign-verify KEY and --no-sign-verify in one value (the
  // last one wins); note each as it comes so that giving both is an error.
  const given = { key: undefined as string | undefined, off: false };
  const add = remote
    .command('add')
    .description('add a remote; --sign-verify makes commits and the summary need a good ed25519 signature')
    .argument('<name>', 'remote name')
    .argument('<url>', 'http, https or file URL of the repository')
    .option('--repo <path>', 'repository path')
    .option('--sign-verify <key>', 'trusted public key: a key file or the base64 key')
    .option('--no-sign-verify', 'record that this remote is not verified')
    .option('--json', 'print JSON')
    .action(async (name: string, url: string, o: { repo?: string; json?: boolean }) => {
      const { addRemote } = await import('../../remote/remotes.js');
      const r = addRemote({ repo: requireRepo(o.repo), name, url, signVerify: given.key, noSignVerify: given.off });
      if (o.json) return printJson(r);
      out(`Added remote ${r.name} ${r.url}${r.signVerify ? ' (ed25519 signatures required)' : ' (signatures not verified)'}`);
    });
  add.on('option:sign-verify', (key: string) => (given.key = key));
  add.on('option:no-sign-verify', () => (given.off = true));
  remote
    .command('list')
    .description('list remotes')
    .option('--repo <path>', 'repository path')
    .option('--json', 'print JSON')
    .action(async (o: { repo?: string; json?: boolean }) => {
      const { listRemotes } = await import('../../remote/remotes.js');
      const remotes = listRemotes({ repo: requireRepo(o.repo) });
      if (o.json) return printJson(remotes);
      if (remotes.length) out(table(remotes.map((r) => [r.name, r.url, r.signVerify ? 'ed25519' : 'unverified'])));
    });
  remote
    .command('delete')
    .description('delete a remote from the config (its pulled refs stay, as with ostree)')
    .argument('<name>', 'remote name')
    .option('--repo <path>', 'repository path')
    .option('--json', 'print JSON')
    .action(async (name: string, o: { repo?: string; json?: boolean }) => {
      const { deleteRemote } = await import('../../remote/remotes.js');
      deleteRemote({ repo: requireRepo(o.repo), name });
      if (o.json) return printJson({ deleted: name });
      out(`Deleted remote ${name}`);
    });
  remote
    .command('refs')
    .description("list the refs a remote offers (from its summary, verified when the remote has keys)")
    .argument('<name>', 'remote name')
    .option('--repo <path>', 'repository path')
    .option('--json', 'print JSON')
    .action(async (name: string, o: { repo?: string; json?: boolean }) => {
      const { fetchRemoteSummary } = await import('../../remote/remotes.js');
      const r = await fetchRemoteSummary({ repo: requireRepo(o.repo), name });
      if (o.json) return printJson({ remote: r.remote, url: r.url, verifiedBy: r.verifiedBy, refs: r.summary.refs });
      for (const ref of r.summary.refs) out(`${r.remote}:${ref.name} ${ref.checksum}`);
      if (r.summary.refs.length === 0) out(`(remote ${r.remote} offers no refs)`);
    });
  for (const c of remote.commands) c.exitOverride();
}
