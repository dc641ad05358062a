import { createHash, hash } from "node:crypto";
import { AgentwallError } from "../errors.js";

// RFC 6962 / RFC 9162 section 2.1: leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right),
// and the root of the empty tree is SHA-256 of the empty string.
const LEAF_PREFIX = Buffer.from([0]);
const NODE_PREFIX = Buffer.from([1]);

/** SHA-256(0x00 || data). */
export function leafHash(data: Uint8Array): Buffer {
  return createHash("sha256").update(LEAF_PREFIX).update(data).digest();
}

const NODE_INPUT = Buffer.alloc(65, 1);

/** SHA-256(0x01 || left || right), one-shot (crypto.hash is about 1.5x faster than a Hash object here). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  if (left.length !== 32 || right.length !== 32) {
    return createHash("sha256").update(NODE_PREFIX).update(left).update(right).digest();
  }
  // hash() copies its input, so one scratch buffer serves every call (a hot loop when verifying).
  NODE_INPUT.set(left, 1);
  NODE_INPUT.set(right, 33);
  return hash("sha256", NODE_INPUT, "buffer");
}

/** The root of the empty tree. */
export const EMPTY_ROOT: Buffer = createHash("sha256").digest();

function largestPowerOfTwoBelow(n: number): number {
  // The largest power of two strictly smaller than n (n >= 2).
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** MTH(D[lo:hi]) over leaf hashes, by the recursive definition. */
function subtreeRoot(leaves: readonly Buffer[], lo: number, hi: number): Buffer {
  const n = hi - lo;
  if (n === 0) return EMPTY_ROOT;
  if (n === 1) return leaves[lo] as Buffer;
  const k = largestPowerOfTwoBelow(n);
  return nodeHash(subtreeRoot(leaves, lo, lo + k), subtreeRoot(leaves, lo + k, hi));
}

/** The Merkle tree hash of a list of leaf hashes. */
export function rootOf(leaves: readonly Buffer[]): Buffer {
  return subtreeRoot(leaves, 0, leaves.length);
}

/**
 * The right edge of a Merkle tree (its perfect subtrees, largest first): enough to append leaves and
 * compute the root in O(log n) without the leaves themselves. It is what the database keeps as the
 * log's head, and what a pruned prefix leaves behind.
 */
export class MerkleFrontier {
  #heights: number[];
  #hashes: Buffer[];
  #size: number;

  constructor(size = 0, nodes: ReadonlyArray<readonly [number, Buffer]> = []) {
    this.#size = size;
    this.#heights = nodes.map((n) => n[0]);
    this.#hashes = nodes.map((n) => n[1]);
    let total = 0;
    for (const h of this.#heights) total += 2 ** h;
    if (total !== size) throw new AgentwallError("ERR_INVALID_ARGUMENT", "frontier does not match its size");
  }

  get size(): number {
    return this.#size;
  }

  append(leaf: Buffer): void {
    let height = 0;
    let hash = leaf;
    while (this.#heights.length > 0 && this.#heights[this.#heights.length - 1] === height) {
      this.#heights.pop();
      hash = nodeHash(this.#hashes.pop() as Buffer, hash);
      height += 1;
    }
    this.#heights.push(height);
    this.#hashes.push(hash);
    this.#size += 1;
  }

  root(): Buffer {
    if (this.#hashes.length === 0) return EMPTY_ROOT;
    let r = this.#hashes[this.#hashes.length - 1] as Buffer;
    for (let i = this.#hashes.length - 2; i >= 0; i--) r = nodeHash(this.#hashes[i] as Buffer, r);
    return r;
  }

  clone(): MerkleFrontier {
    return new MerkleFrontier(this.#size, this.#nodes());
  }

  #nodes(): Array<[number, Buffer]> {
    return this.#heights.map((h, i) => [h, this.#hashes[i] as Buffer]);
  }

  /** JSON text: `[[height, hex], …]`. */
  serialize(): string {
    return JSON.stringify(this.#nodes().map(([h, b]) => [h, b.toString("hex")]));
  }

  static parse(size: number, text: string): MerkleFrontier {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "frontier is not JSON");
    }
    if (!Array.isArray(raw)) throw new AgentwallError("ERR_INVALID_ARGUMENT", "frontier is not a list");
    const nodes: Array<[number, Buffer]> = [];
    for (const item of raw) {
      if (
        !Array.isArray(item) ||
        typeof item[0] !== "number" ||
        !Number.isInteger(item[0]) ||
        typeof item[1] !== "string" ||
        !/^[0-9a-f]{64}$/.test(item[1])
      ) {
        throw new AgentwallError("ERR_INVALID_ARGUMENT", "frontier node is malformed");
      }
      nodes.push([item[0], Buffer.from(item[1], "hex")]);
    }
    return new MerkleFrontier(size, nodes);
  }
}

/** RFC 9162 2.1.3.1: the audit path of leaf `index` in the tree of the first `size` leaves. */
export function inclusionProof(leaves: readonly Buffer[], index: number, size: number = leaves.length): Buffer[] {
  if (!Number.isInteger(index) || !Number.isInteger(size) || index < 0 || index >= size || size > leaves.length) {
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "leaf index outside the tree");
  }
  const path = (m: number, lo: number, hi: number): Buffer[] => {
    const n = hi - lo;
    if (n <= 1) return [];
    const k = largestPowerOfTwoBelow(n);
    if (m < k) return [...path(m, lo, lo + k), subtreeRoot(leaves, lo + k, hi)];
    return [...path(m - k, lo + k, hi), subtreeRoot(leaves, lo, lo + k)];
  };
  return path(index, 0, size);
}

/** RFC 9162 2.1.4.1: the consistency proof between the trees of the first `size1` and `size2` leaves. */
export function consistencyProof(leaves: readonly Buffer[], size1: number, size2: number = leaves.length): Buffer[] {
  if (!Number.isInteger(size1) || !Number.isInteger(size2) || size1 < 1 || size1 > size2 || size2 > leaves.length) {
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "tree sizes out of range");
  }
  const subproof = (m: number, lo: number, hi: number, complete: boolean): Buffer[] => {
    const n = hi - lo;
    if (m === n) return complete ? [] : [subtreeRoot(leaves, lo, hi)];
    const k = largestPowerOfTwoBelow(n);
    if (m <= k) return [...subproof(m, lo, lo + k, complete), subtreeRoot(leaves, lo + k, hi)];
    return [...subproof(m - k, lo + k, hi, false), subtreeRoot(leaves, lo, lo + k)];
  };
  return size1 === size2 ? [] : subproof(size1, 0, size2, true);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** RFC 9162 2.1.3.2. Returns whether `proof` shows `leaf` at `index` in the tree with `root`. */
export function verifyInclusion(
  index: number,
  size: number,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  if (leaf.length !== 32 || root.length !== 32 || proof.some((p) => p.length !== 32)) return false;
  let fn = BigInt(index);
  let sn = BigInt(size - 1);
  let r: Uint8Array = leaf;
  for (const p of proof) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n && equal(r, root);
}

/** RFC 9162 2.1.4.2. Returns whether `proof` shows the tree (`size1`, `root1`) is a prefix of (`size2`, `root2`). */
export function verifyConsistency(
  size1: number,
  size2: number,
  root1: Uint8Array,
  root2: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  if (!Number.isSafeInteger(size1) || !Number.isSafeInteger(size2) || size1 < 0 || size2 < size1) return false;
  // A proof from the empty tree proves nothing (RFC 9162 requires 0 < first).
  if (size1 === 0) return false;
  if (size1 === size2) return proof.length === 0 && equal(root1, root2);
  if (root1.length !== 32 || root2.length !== 32 || proof.length === 0) return false;
  if (proof.some((p) => p.length !== 32)) return false;
  const path = [...proof];
  if ((size1 & (size1 - 1)) === 0) path.unshift(root1);
  let fn = BigInt(size1 - 1);
  let sn = BigInt(size2 - 1);
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr: Uint8Array = path[0] as Uint8Array;
  let sr: Uint8Array = fr;
  for (const c of path.slice(1)) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n && equal(fr, root1) && equal(sr, root2);
}
