// The server side of the fleet benchmark, in its own process so that the
// load generator does not share its event loop: `fleet DBURL` runs the fleet
// app on that database, `bare` a Fastify route answering a constant. Prints
// {"url": …} once listening; stops on SIGTERM.

import Fastify from 'fastify';
import { buildApp } from '../src/fleet/app.js';
import { openDb } from '../src/fleet/db.js';
import { migrate } from '../src/fleet/migrations.js';

async function main(): Promise<void> {
  const [mode, url] = process.argv.slice(2);
  let app;
  if (mode === 'bare') {
    app = Fastify({ logger: false });
    app.get('/v1/device/next', async () => ({ action: 'none', reason: 'up-to-date', pollAfterSeconds: 60 }));
  } else {
    const fdb = await openDb(url, { poolSize: Number(process.env.STRATA_FLEET_POOL ?? 10) });
    await migrate(fdb);
    app = await buildApp({ db: fdb, repoUrl: 'http://cdn.invalid/repo', closeDb: true });
  }
  await app.listen({ port: 0, host: '127.0.0.1' });
  const addr = app.server.address();
  process.stdout.write(JSON.stringify({ url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}` }) + '\n');
  process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
}

main().catch((err: unknown) => {
  process.stderr.write(`fleet-child: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
