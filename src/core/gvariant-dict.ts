// The order in which GLib's GVariantDict writes an a{sv}. libostree builds the
// summary, its ref entries, delta indexes and detached metadata with
// GVariantDict, which keeps entries in a GHashTable keyed by g_str_hash and
// writes them in bucket order. Writing our dictionaries in the same order makes
// those files byte-identical to what ostree writes for the same content.
//
// Facts from GLib 2.74 (glib/ghash.c), the version Debian 12's ostree links:
// - g_str_hash: h = 5381; h = h * 33 + c for each byte as a signed char.
// - 8 buckets at first (shift 3); bucket count 2^shift, with prime_mod[shift]
//   (the largest prime below it) for the first probe: (hash * 11) % mod, in
//   32-bit unsigned arithmetic; hash values 0 and 1 are stored as 2.
// - Probing: step += 1; index = (index + step) & (size - 1).
// - After inserting into an unused bucket, the table resizes when
//   size <= occupied + occupied / 16 (or shrinks; never on inserts only):
//   new shift = max(3, bit length of trunc(nodes * 1.333)), and entries are
//   moved in place by walking the old buckets in order, evicting whatever sits
//   in a target bucket that has not been placed yet (resize_map).
// - Iteration walks the buckets from 0 upwards.
// Pure: no imports.

const PRIME_MOD = [1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071, 262139, 524287, 1048573, 2097143, 4194301, 8388593, 16777213, 33554393, 67108859, 134217689, 268435399, 536870909, 1073741789, 2147483647];
const MIN_SHIFT = 3;

/** GLib's g_str_hash over the UTF-8 bytes (each taken as a signed char). */
export function glibStrHash(key: string): number {
  let h = 5381;
  for (const byte of Buffer.from(key, 'utf8')) h = (Math.imul(h, 33) + (byte >= 128 ? byte - 256 : byte)) >>> 0;
  return h;
}

class StrHashTable<T> {
  private shift = MIN_SHIFT;
  private hashes: number[] = new Array<number>(1 << MIN_SHIFT).fill(0);
  private keys: (string | undefined)[] = new Array<string | undefined>(1 << MIN_SHIFT).fill(undefined);
  private values: (T | undefined)[] = new Array<T | undefined>(1 << MIN_SHIFT).fill(undefined);
  private nodes = 0;

  private get size(): number {
    return 1 << this.shift;
  }

  private firstIndex(hash: number): number {
    return (Math.imul(hash, 11) >>> 0) % PRIME_MOD[this.shift];
  }

  insert(key: string, value: T): void {
    let hash = glibStrHash(key);
    if (hash < 2) hash = 2;
    const mask = this.size - 1;
    let index = this.firstIndex(hash);
    let step = 0;
    while (this.hashes[index] !== 0) {
      if (this.hashes[index] === hash && this.keys[index] === key) {
        this.values[index] = value; // g_hash_table_insert keeps the slot and replaces the value
        return;
      }
      step++;
      index = (index + step) & mask;
    }
    this.hashes[index] = hash;
    this.keys[index] = key;
    this.values[index] = value;
    this.nodes++;
    // No removals happen here, so every occupied bucket holds a node.
    if (this.size <= this.nodes + Math.floor(this.nodes / 16)) this.grow();
  }

  private grow(): void {
    const oldSize = this.size;
    let n = Math.trunc(this.nodes * 1.333);
    let bits = 0;
    while (n) {
      n >>= 1;
      bits++;
    }
    this.shift = Math.max(bits, MIN_SHIFT);
    const size = this.size;
    const mask = size - 1;
    while (this.hashes.length < size) {
      this.hashes.push(0);
      this.keys.push(undefined);
      this.values.push(undefined);
    }
    const placed = new Array<boolean>(Math.max(size, oldSize)).fill(false);
    for (let i = 0; i < oldSize; i++) {
      let hash = this.hashes[i];
      if (hash < 2 || placed[i]) continue;
      this.hashes[i] = 0;
      let key = this.keys[i];
      let value = this.values[i];
      this.keys[i] = undefined;
      this.values[i] = undefined;
      for (;;) {
        let target = this.firstIndex(hash);
        let step = 0;
        while (placed[target]) {
          step++;
          target = (target + step) & mask;
        }
        placed[target] = true;
        const evictedHash = this.hashes[target];
        const evictedKey = this.keys[target];
        const evictedValue = this.values[target];
        this.hashes[target] = hash;
        this.keys[target] = key;
        this.values[target] = value;
        if (evictedHash < 2) break;
        hash = evictedHash;
        key = evictedKey;
        value = evictedValue;
      }
    }
  }

  entries(): [string, T][] {
    const out: [string, T][] = [];
    for (let i = 0; i < this.size; i++) if (this.hashes[i] >= 2) out.push([this.keys[i] as string, this.values[i] as T]);
    return out;
  }
}

/**
 * The entries as g_variant_dict_end writes them after inserting them in this
 * order (a key inserted again keeps its place and takes the new value).
 */
export function glibDictOrder<T>(entries: readonly (readonly [string, T])[]): [string, T][] {
  const table = new StrHashTable<T>();
  for (const [k, v] of entries) table.insert(k, v);
  return table.entries();
}
