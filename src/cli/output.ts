// Printing for the CLI: human text or JSON, progress bars on a terminal, and
// the one place where errors become a line on stderr and an exit code.

import { StrataError, ERROR_CODES } from '../errors.js';

export interface GlobalFlags {
  json?: boolean;
}

export function printJson(data: unknown): void {
  process.stdout.write(JSON.stringify(data, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n');
}

export function out(line = ''): void {
  process.stdout.write(line + '\n');
}

export function formatBytes(n: number): string {
  const abs = Math.abs(n);
  if (abs < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}

export interface Progress {
  /** `fields` fill `{name}` placeholders of a custom format. */
  update(done: number, total?: number, fields?: Record<string, string>): void;
  stop(): void;
}

/**
 * A progress bar on stderr when it is a terminal and output is not JSON;
 * otherwise silent. `middle` replaces the default `{value}/{total}` part.
 */
export async function progress(label: string, flags: GlobalFlags, middle = '{value}/{total}'): Promise<Progress> {
  if (flags.json || !process.stderr.isTTY) return { update() {}, stop() {} };
  const { SingleBar, Presets } = await import('cli-progress');
  const bar = new SingleBar(
    { format: `${label} [{bar}] {percentage}% | ${middle} | {duration_formatted} (ETA {eta_formatted})`, stream: process.stderr, hideCursor: true, clearOnComplete: true, etaBuffer: 200 },
    Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total, fields) {
      if (!started) {
        bar.start(total ?? done, done, fields);
        started = true;
      }
      if (total !== undefined) bar.setTotal(total);
      bar.update(done, fields);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

/** Escapes control characters (a newline in a ref name or path) so an error stays one line. */
function oneLine(text: string): string {
  return text.replace(/[\x00-\x1f\x7f]/g, (c) => JSON.stringify(c).slice(1, -1));
}

/** Maps any error to one line on stderr and the registry's exit code. */
export function handleError(err: unknown): number {
  if (err instanceof StrataError) {
    process.stderr.write(`strata: ${oneLine(err.message)}\n`);
    return ERROR_CODES[err.code].exit;
  }
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && e.syscall) {
    process.stderr.write(`strata: ${oneLine(`${e.syscall} ${e.path ?? ''}: ${e.code}`)}\n`);
    return ERROR_CODES.IO.exit;
  }
  process.stderr.write(`strata: internal error: ${(e && e.stack) || String(err)}\n`);
  return ERROR_CODES.INTERNAL.exit;
}

export function requireRepo(opt: string | undefined): string {
  const repo = opt ?? process.env.STRATA_REPO;
  if (!repo) throw new StrataError('USAGE', 'no repository given: pass --repo PATH (or set STRATA_REPO)');
  return repo;
}

export function parseIntFlag(name: string, value: string, min = 0): number {
  if (!/^-?\d+$/.test(value) || Number(value) < min) throw new StrataError('USAGE', `${name} needs a whole number >= ${min}, got '${value}'`);
  return Number(value);
}
