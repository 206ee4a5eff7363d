// The programs that read and write the .xz streams of static delta parts:
// Debian's xz-utils everywhere, and 7-Zip's 7zz when it is installed, which
// does the same work with less CPU (decision 0013).

import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { StrataError, ioError } from '../errors.js';

export type XzTool = 'xz' | '7zz';

const PACKAGE: Record<XzTool, string> = { xz: 'xz-utils', '7zz': '7zip' };

/** 7zz when it is on the PATH, else xz; a named tool as it is. */
export function pickXzTool(wanted: XzTool | 'auto'): XzTool {
  if (wanted !== 'auto') return wanted;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (!dir) continue;
    try {
      fs.accessSync(path.join(dir, '7zz'), fs.constants.X_OK);
      return '7zz';
    } catch {
      // not in this directory
    }
  }
  return 'xz';
}

/** The error for a tool that is not installed; `doing` is what it was needed for ("compress a delta part"). */
function xzToolMissing(tool: XzTool, doing: string): StrataError {
  return new StrataError('TOOL_MISSING', `cannot ${doing}: the '${tool}' command is missing; install the Debian package ${PACKAGE[tool]}`, { command: tool, package: PACKAGE[tool] });
}

/** Arguments that decompress an .xz stream from stdin to stdout. */
export function decompressArgs(tool: XzTool): string[] {
  return tool === 'xz' ? ['-d', '-c', '-q'] : ['e', '-txz', '-si', '-so', '-bso0', '-bsp0'];
}

/** The last line a tool wrote to stderr, without xz's "xz: (stdin): " or 7zz's "ERROR: … : ~" around it. */
function toolMessage(stderr: string): string {
  return (stderr.trim().split('\n').pop() ?? '').replace(/^xz: \(stdin\): |^ERROR: /, '').replace(/ : ~$/, '').trim();
}

/** A running xz or 7zz. */
export interface XzRun {
  /**
   * Resolves when the tool exits with 0; rejects with TOOL_MISSING when it is
   * not installed, an IO error when it cannot be run, and `failed(message)`
   * for any other end (its last stderr line, or its exit code).
   */
  done: Promise<void>;
  kill(): void;
}

/** Runs `tool` with `input` on its stdin, handing each chunk of its stdout to `onData`. */
export function runXzTool(
  tool: XzTool,
  args: string[],
  input: Buffer,
  opts: { doing: string; onData: (chunk: Buffer) => void; failed: (message: string) => Error },
): XzRun {
  const child = spawn(tool, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let exited = false;
  child.stdout.on('data', opts.onData);
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  child.stdin.on('error', () => undefined); // reported by 'close'
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', (err: NodeJS.ErrnoException) => {
      exited = true;
      reject(err.code === 'ENOENT' ? xzToolMissing(tool, opts.doing) : ioError(err, 'run', tool));
    });
    child.on('close', (code) => {
      exited = true;
      if (code === 0) resolve();
      else reject(opts.failed(toolMessage(stderr) || `exit code ${code}`));
    });
  });
  child.stdin.end(input);
  return {
    done,
    kill: () => {
      if (!exited) child.kill();
    },
  };
}
