import type { Command } from 'commander';
import { out, parseIntFlag, printJson, requireRepo } from '../output.js';

export function register(program: Command): void {
  program
    .command('serve')
    .description('serve an archive repository read-only over HTTP (what ostree pull and strata fetch)')
    .option('--repo <path>', 'repository path')
    .option('--port <n>', 'TCP port (0 picks a free one)', '8080')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--quiet', 'no access log on stderr')
    .option('--json', 'print {"url": …} once listening')
    .action(async (o: { repo?: string; port: string; host: string; quiet?: boolean; json?: boolean }) => {
      const { buildServer, listen, shutdown } = await import('../../remote/serve.js');
      const port = parseIntFlag('--port', o.port);
      const repo = requireRepo(o.repo);
      const server = buildServer({
        repo,
        onRequest: o.quiet ? undefined : (e) => process.stderr.write(`${new Date().toISOString()} ${e.method} ${e.url} ${e.status} ${e.bytes}\n`),
      });
      const { url } = await listen(server, { port, host: o.host });
      if (o.json) printJson({ url });
      else out(`Serving ${repo} at ${url} (Ctrl-C stops)`);
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          void shutdown(server).then(resolve);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
