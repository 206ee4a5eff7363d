// Tests assert on error codes, never on message text.
import { StrataError } from '../../src/errors.js';

/** The StrataError code `fn` throws, or undefined when it returns; other errors propagate. */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof StrataError) return err.code;
    throw err;
  }
  return undefined;
}
