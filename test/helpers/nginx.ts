// Debian's nginx in the foreground on a loopback port, serving a directory as
// static files: the plain web server a CDN or mirror would be. Shared by the
// interop tests.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { tmpDir } from './fixtures.js';

/** The nginx binary, or undefined when it is not installed. */
export const NGINX = ['/usr/sbin/nginx', 'nginx'].find((n) => spawnSync(n, ['-v']).status === 0);

export function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.on('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Debian's nginx in the foreground, one process, serving `root` as static files on a loopback port. */
export async function startNginx(root: string): Promise<{ url: string; child: ChildProcess }> {
  const dir = tmpDir('strata-nginx-');
  const port = await freePort();
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) fs.mkdirSync(path.join(dir, d));
  fs.writeFileSync(
    path.join(dir, 'nginx.conf'),
    `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 64; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    autoindex off;
    location / { try_files $uri =404; }
  }
}
`,
  );
  const child = spawn(NGINX as string, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log')], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}/`;
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited ${child.exitCode}: ${fs.readFileSync(path.join(dir, 'error.log'), 'utf8')}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) return { url, child };
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('nginx did not start listening');
}
