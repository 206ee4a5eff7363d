// Kernel command-line arguments: split as the kernel does (spaces outside
// double quotes), validated, and edited by key the way `ostree admin deploy
// --karg` and `rpm-ostree kargs` do.

import { StrataError } from '../errors.js';

export function splitKargs(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of line) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && (ch === ' ' || ch === '\t')) {
      if (cur) out.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  if (cur) out.push(cur);
  return out;
}

export function kargKey(arg: string): string {
  const eq = arg.indexOf('=');
  return eq < 0 ? arg : arg.slice(0, eq);
}

/** Refuses what would break an entry's `options` line or the `ostree=` argument strata owns. */
export function validateKarg(arg: string): void {
  const fail = (why: string): never => {
    throw new StrataError('INVALID_KARG', `kernel argument '${arg.replace(/\n/g, '\\n')}' ${why}`, { karg: arg });
  };
  if (arg === '') fail('is empty');
  if (/[\n\r\0]/.test(arg)) fail('holds a newline or NUL');
  if ((arg.match(/"/g) ?? []).length % 2 !== 0) fail('has an unbalanced double quote');
  if (/\s/.test(arg.replace(/"[^"]*"/g, ''))) fail('holds a space outside double quotes');
  const key = kargKey(arg);
  if (key === '' || key.startsWith('-')) fail('has no name before =');
  if (key === 'ostree') fail('sets ostree=, which strata writes itself');
}

export interface KargEdits {
  /** Set KEY=VALUE, replacing every argument with that key (ostree's --karg). */
  set?: string[];
  /** Add an argument, keeping others with the same key (--karg-append). */
  append?: string[];
  /** Remove KEY (every value) or exactly KEY=VALUE. */
  delete?: string[];
  /** KEY=OLD=NEW replaces one value; KEY=VALUE replaces the only one (rpm-ostree's --replace). */
  replace?: string[];
}

export function editKargs(current: string[], edits: KargEdits): string[] {
  let args = [...current];
  for (const a of edits.delete ?? []) {
    validateKarg(a);
    const before = args.length;
    args = a.includes('=') ? args.filter((x) => x !== a) : args.filter((x) => kargKey(x) !== a);
    if (args.length === before) throw new StrataError('INVALID_KARG', `kernel argument '${a}' is not set, so it cannot be deleted`, { karg: a });
  }
  for (const r of edits.replace ?? []) {
    // KEY=OLD=NEW where OLD is a value that is set (values may hold '='), else KEY=VALUE for a single KEY.
    const key = kargKey(r);
    let done = false;
    for (let eq = r.indexOf('=', key.length + 1); eq >= 0 && !done; eq = r.indexOf('=', eq + 1)) {
      const i = args.indexOf(r.slice(0, eq));
      if (i < 0) continue;
      const newArg = `${key}=${r.slice(eq + 1)}`;
      validateKarg(newArg);
      args[i] = newArg;
      done = true;
    }
    if (done) continue;
    validateKarg(r);
    const hits = args.filter((x) => kargKey(x) === key);
    if (hits.length !== 1) throw new StrataError('INVALID_KARG', `--replace ${r}: ${hits.length === 0 ? 'no' : 'several'} '${key}' arguments are set (use KEY=OLD=NEW)`, { karg: r });
    args[args.indexOf(hits[0])] = r;
  }
  for (const s of edits.set ?? []) {
    validateKarg(s);
    const key = kargKey(s);
    const i = args.findIndex((x) => kargKey(x) === key);
    args = args.filter((x) => kargKey(x) !== key);
    args.splice(i < 0 ? args.length : i, 0, s);
  }
  for (const a of edits.append ?? []) {
    validateKarg(a);
    args.push(a);
  }
  return args;
}
