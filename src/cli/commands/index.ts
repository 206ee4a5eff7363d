import type { Command } from 'commander';
import { register as init } from './init.js';
import { register as commit } from './commit.js';
import { register as checkout } from './checkout.js';
import { register as refs } from './refs.js';
import { register as revParse } from './rev-parse.js';
import { register as log } from './log.js';
import { register as show } from './show.js';
import { register as ls } from './ls.js';
import { register as cat } from './cat.js';
import { register as diff } from './diff.js';
import { register as fsck } from './fsck.js';
import { register as prune } from './prune.js';
import { register as tour } from './tour.js';
import { register as keygen } from './keygen.js';
import { register as sign } from './sign.js';
import { register as summary } from './summary.js';

export const COMMANDS: ((program: Command) => void)[] = [init, commit, checkout, refs, revParse, log, show, ls, cat, diff, fsck, prune, keygen, sign, summary, tour];
