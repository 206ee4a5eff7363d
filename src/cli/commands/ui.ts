import type { Command } from 'commander';
import { StrataError } from '../../errors.js';
import { out, parseIntFlag, printJson } from '../output.js';

export function register(program: Command): void {
  program
    .command('ui')
    .description("serve this machine's dashboard (its deployments, and the repository's commits, tree and package diffs) read-only over HTTP")
    .option('--repo <path>', 'repository path (default: the sysroot\'s ostree/repo)')
    .option('--sysroot <path>', 'sysroot whose deployments to show')
    .option('--port <n>', 'TCP port (0 picks a free one)', '8090')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--json', 'print {"url": …} once listening')
    .action(async (o: { repo?: string; sysroot?: string; port: string; host: string; json?: boolean }) => {
      const { buildUiApp, sysrootRepo } = await import('../../fleet/ui-app.js');
      const port = parseIntFlag('--port', o.port);
      const repo = o.repo ?? process.env.STRATA_REPO ?? (o.sysroot ? sysrootRepo(o.sysroot) : undefined);
      if (!repo) throw new StrataError('USAGE', 'no repository given: pass --repo PATH or --sysroot PATH');
      if (o.sysroot) {
        const { Sysroot } = await import('../../sysroot/sysroot.js');
        Sysroot.open(o.sysroot); // a wrong --sysroot fails now, not on the first page load
      }
      const app = await buildUiApp({ repo, sysroot: o.sysroot });
      let url: string;
      try {
        url = await app.listen({ port, host: o.host });
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new StrataError('LISTEN_FAILED', `cannot listen on ${o.host}:${port}: ${e.code ?? e.message}`, { host: o.host, port });
      }
      if (o.json) printJson({ url });
      else out(`strata ui for ${repo} at ${url} (read-only; Ctrl-C stops)`);
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          void app.close().then(() => resolve());
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
