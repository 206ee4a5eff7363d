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

/** The StrataError code a promise rejects with, or undefined when it resolves; other errors propagate. */
export async function codeOfAsync(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    if (err instanceof StrataError) return err.code;
    throw err;
  }
  return undefined;
}
