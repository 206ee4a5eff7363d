import type { Command } from 'commander';
import { StrataError } from '../../errors.js';
import { out, printJson, requireRepo } from '../output.js';

interface Flags {
  repo?: string;
  key?: string;
  verify?: boolean;
  verifyKey: string[];
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('sign')
    .description('add an ed25519 signature to a commit (detached metadata, as ostree), or verify its signatures')
    .argument('<commit>', 'ref or commit')
    .option('--repo <path>', 'repository path')
    .option('--key <file>', 'secret key file (one base64 key per line; each key signs)')
    .option('--verify', 'verify instead of signing')
    .option('--verify-key <file|base64>', 'trusted public key: a key file or the base64 key (repeatable)', (v: string, acc: string[]) => [...acc, v], [])
    .option('--json', 'print JSON')
    .action(async (rev: string, o: Flags) => {
      const sign = await import('../../remote/sign.js');
      const repo = requireRepo(o.repo);
      if (o.verify) {
        if (o.key !== undefined) throw new StrataError('USAGE', '--verify takes --verify-key, not --key');
        if (o.verifyKey.length === 0) throw new StrataError('USAGE', 'sign --verify needs --verify-key FILE|BASE64');
        const keys = o.verifyKey.flatMap((k) => sign.resolvePublicKeys(k));
        const r = sign.verifyCommit({ repo, rev, keys });
        if (o.json) return printJson({ ...r, valid: true });
        out(`Good ed25519 signature on ${r.checksum} from key ${r.key}`);
        return;
      }
      if (o.verifyKey.length > 0) throw new StrataError('USAGE', '--verify-key needs --verify');
      if (o.key === undefined) throw new StrataError('USAGE', 'sign needs --key FILE (or --verify with --verify-key)');
      const r = sign.signCommit({ repo, rev, keyFile: o.key });
      if (o.json) return printJson(r);
      out(r.added > 0 ? `Signed ${r.checksum} (${r.signatures} signature${r.signatures === 1 ? '' : 's'} now)` : `${r.checksum} already carries this signature`);
    });
}
