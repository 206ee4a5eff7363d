import type { Command } from 'commander';

type Register = (program: Command) => void;

/**
 * Every top-level command and the module that declares it, in the order help
 * lists them. A run of one command loads only its module (the other 26 took
 * ~20 ms of every start); help, versions and unknown names load them all.
 */
export const COMMANDS: [string, () => Promise<{ register: Register }>][] = [
  ['init', () => import('./init.js')],
  ['commit', () => import('./commit.js')],
  ['compose', () => import('./compose.js')],
  ['checkout', () => import('./checkout.js')],
  ['refs', () => import('./refs.js')],
  ['rev-parse', () => import('./rev-parse.js')],
  ['log', () => import('./log.js')],
  ['show', () => import('./show.js')],
  ['ls', () => import('./ls.js')],
  ['cat', () => import('./cat.js')],
  ['diff', () => import('./diff.js')],
  ['db', () => import('./db.js')],
  ['fsck', () => import('./fsck.js')],
  ['prune', () => import('./prune.js')],
  ['keygen', () => import('./keygen.js')],
  ['sign', () => import('./sign.js')],
  ['summary', () => import('./summary.js')],
  ['static-delta', () => import('./static-delta.js')],
  ['remote', () => import('./remote.js')],
  ['pull', () => import('./pull.js')],
  ['serve', () => import('./serve.js')],
  ['ui', () => import('./ui.js')],
  ['fleet', () => import('./fleet.js')],
  ['admin', () => import('./admin.js')],
  ['health', () => import('./health.js')],
  ['agent', () => import('./agent.js')],
  ['tour', () => import('./tour.js')],
];
