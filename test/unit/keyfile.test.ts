// The config editor: GKeyFile reading, edits that keep every other line.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { KeyFile, escapeValue, keyFileBoolean, unescapeValue } from '../../src/repo/keyfile.js';
import { codeOf } from '../helpers/errors.js';

const CONFIG = `# written by hand
[core]
repo_version=1
mode=archive-z2

[remote "origin"]
url = http://example.com/repo
gpg-verify=false
; not a comment in GKeyFile, but kept as a line

[x-custom]
key=value with = sign
`;

describe('KeyFile', () => {
  it('reads groups and values as GKeyFile does (spaces around =, last duplicate wins)', () => {
    const k = KeyFile.parse(CONFIG + 'key=second\n');
    expect(k.groups()).toEqual(['core', 'remote "origin"', 'x-custom']);
    expect(k.get('remote "origin"', 'url')).toBe('http://example.com/repo');
    expect(k.get('x-custom', 'key')).toBe('second');
    expect(k.get('core', 'nope')).toBeUndefined();
    expect(k.get('nope', 'mode')).toBeUndefined();
  });

  it('writes back what it read, byte for byte', () => {
    expect(KeyFile.parse(CONFIG).toString()).toBe(CONFIG);
  });

  it('sets a key in place, appends to a group, or makes the group at the end', () => {
    const k = KeyFile.parse(CONFIG);
    k.set('core', 'mode', 'bare-user');
    k.set('core', 'indexed-deltas', 'true');
    k.set('remote "new"', 'url', 'http://x/');
    expect(k.toString()).toBe(
      CONFIG.replace('mode=archive-z2\n', 'mode=bare-user\nindexed-deltas=true\n') + '\n[remote "new"]\nurl=http://x/\n',
    );
  });

  it('removes a group and only that group', () => {
    const k = KeyFile.parse(CONFIG);
    expect(k.removeGroup('remote "origin"')).toBe(true);
    expect(k.removeGroup('remote "origin"')).toBe(false);
    expect(k.toString()).toBe(`# written by hand
[core]
repo_version=1
mode=archive-z2

[x-custom]
key=value with = sign
`);
  });

  it('refuses group and key names that would break the file', () => {
    const k = KeyFile.parse(CONFIG);
    for (const [g, key] of [['a]b', 'k'], ['g', 'a=b'], ['g', 'a\nb'], ['g', ''], ['g\n[core]', 'k']]) {
      expect(codeOf(() => k.set(g, key, 'v'))).toBe('REPO_CONFIG');
    }
  });

  it('escapes values so that a newline cannot start another line (property)', () => {
    fc.assert(
      fc.property(fc.string(), (v) => {
        const k = KeyFile.parse('[g]\n');
        k.set('g', 'k', v);
        expect(k.toString().split('\n')).toHaveLength(3);
        expect(KeyFile.parse(k.toString()).get('g', 'k')).toBe(v);
        expect(unescapeValue(escapeValue(v))).toBe(v);
      }),
    );
  });

  it('reads booleans as GKeyFile does', () => {
    expect([keyFileBoolean('true'), keyFileBoolean('1'), keyFileBoolean('false'), keyFileBoolean('0'), keyFileBoolean('yes'), keyFileBoolean(undefined)]).toEqual([true, true, false, false, undefined, undefined]);
  });
});
