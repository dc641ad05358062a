import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  EMPTY_ROOT,
  MerkleFrontier,
  consistencyProof,
  inclusionProof,
  leafHash,
  rootOf,
  verifyConsistency,
  verifyInclusion,
} from "./merkle.js";

const FIXTURES = join(import.meta.dirname, "../../test/fixtures/merkle");

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}
const b64 = (s: string) => Buffer.from(s, "base64");

interface InclusionCase {
  leafIdx: number;
  treeSize: number;
  root: string;
  leafHash: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}
interface ConsistencyCase {
  size1: number;
  size2: number;
  root1: string;
  root2: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

describe("RFC 6962 reference vectors", () => {
  const ref = JSON.parse(readFileSync(join(FIXTURES, "rfc6962_reference_vectors.json"), "utf8")) as {
    leafInputsHex: string[];
    rootHashByTreeSizeHex: string[];
  };
  const leaves = ref.leafInputsHex.map((h) => leafHash(Buffer.from(h, "hex")));
  it("roots for every size match, by recursion and by frontier", () => {
    const frontier = new MerkleFrontier();
    assert.equal(ref.rootHashByTreeSizeHex.length, 9);
    ref.rootHashByTreeSizeHex.forEach((want, size) => {
      assert.equal(rootOf(leaves.slice(0, size)).toString("hex"), want, `size ${size}`);
      assert.equal(frontier.root().toString("hex"), want, `frontier size ${size}`);
      const leaf = leaves[size];
      if (leaf !== undefined) frontier.append(leaf);
    });
    assert.equal(EMPTY_ROOT.toString("hex"), ref.rootHashByTreeSizeHex[0]);
  });
});

describe("transparency-dev inclusion vectors", () => {
  const files = walk(join(FIXTURES, "inclusion"));
  it("covers the corpus", () => assert.ok(files.length >= 90, `${files.length} files`));
  for (const file of files) {
    const c = JSON.parse(readFileSync(file, "utf8")) as InclusionCase;
    it(`${file.slice(FIXTURES.length)}: ${c.desc}`, () => {
      const ok = verifyInclusion(c.leafIdx, c.treeSize, b64(c.leafHash), (c.proof ?? []).map(b64), b64(c.root));
      assert.equal(ok, !c.wantErr);
    });
  }
});

describe("transparency-dev consistency vectors", () => {
  const files = walk(join(FIXTURES, "consistency"));
  it("covers the corpus", () => assert.ok(files.length >= 90, `${files.length} files`));
  for (const file of files) {
    const c = JSON.parse(readFileSync(file, "utf8")) as ConsistencyCase;
    it(`${file.slice(FIXTURES.length)}: ${c.desc}`, () => {
      const ok = verifyConsistency(c.size1, c.size2, b64(c.root1), b64(c.root2), (c.proof ?? []).map(b64));
      assert.equal(ok, !c.wantErr);
    });
  }
});

describe("proofs we generate", () => {
  it("verify for every index and size pair (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 70 }), fc.nat(), fc.nat(), (n, a, b) => {
        const leaves = Array.from({ length: n }, (_, i) => leafHash(Buffer.from(String(i))));
        const size = (a % n) + 1;
        const index = b % size;
        const root = rootOf(leaves.slice(0, size));
        assert.ok(verifyInclusion(index, size, leaves[index] as Buffer, inclusionProof(leaves, index, size), root));
        const size1 = (b % size) + 1;
        const proof = consistencyProof(leaves, size1, size);
        assert.ok(verifyConsistency(size1, size, rootOf(leaves.slice(0, size1)), root, proof));
      }),
    );
  });

  it("fail for a different leaf (negative control)", () => {
    const leaves = Array.from({ length: 13 }, (_, i) => leafHash(Buffer.from(String(i))));
    const proof = inclusionProof(leaves, 5);
    assert.equal(verifyInclusion(5, 13, leafHash(Buffer.from("x")), proof, rootOf(leaves)), false);
    assert.equal(verifyInclusion(6, 13, leaves[5] as Buffer, proof, rootOf(leaves)), false);
  });

  it("frontier round-trips through its serialized form", () => {
    const f = new MerkleFrontier();
    for (let i = 0; i < 37; i++) f.append(leafHash(Buffer.from([i])));
    const g = MerkleFrontier.parse(37, f.serialize());
    assert.deepEqual(g.root(), f.root());
    assert.throws(() => MerkleFrontier.parse(38, f.serialize()), { code: "ERR_INVALID_ARGUMENT" });
  });
});
