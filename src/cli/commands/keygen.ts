import type { Command } from 'commander';
import { out, printJson } from '../output.js';

export function register(program: Command): void {
  program
    .command('keygen')
    .description("make an ed25519 signing key pair in OSTree's encoding (base64; secret = seed + public key)")
    .option('--output <file>', 'write the secret key to FILE (mode 0600) and the public key to FILE.pub; never overwrites')
    .option('--json', 'print JSON')
    .action(async (o: { output?: string; json?: boolean }) => {
      const { generateKeyPair, writeKeyPair } = await import('../../remote/sign.js');
      const pair = generateKeyPair();
      if (o.output === undefined) {
        // No file: the secret key goes to stdout, for a secret store to take.
        if (o.json) return printJson(pair);
        out(`secret: ${pair.secretKey}`);
        out(`public: ${pair.publicKey}`);
        return;
      }
      const files = writeKeyPair(o.output, pair);
      if (o.json) return printJson({ publicKey: pair.publicKey, ...files });
      out(`Secret key: ${files.secretFile} (keep it private)`);
      out(`Public key: ${files.publicFile}`);
      out(pair.publicKey);
    });
}
