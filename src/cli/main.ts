// Entry point of the `strata` command.
import { main } from './program.js';

process.exitCode = await main(process.argv.slice(2));
