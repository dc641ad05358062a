import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";
import { AgentwallError, ERROR_CODES, isErrorCode } from "../src/errors.js";

it("docs/errors.md lists exactly the codes of src/errors.ts, once each", () => {
  const text = readFileSync(join(import.meta.dirname, "../docs/errors.md"), "utf8");
  const documented = [...text.matchAll(/^\|\s*`(ERR_[A-Z0-9_]+)`\s*\|/gm)].map((m) => m[1]);
  assert.deepEqual([...documented].sort(), [...ERROR_CODES].sort());
  assert.equal(new Set(documented).size, documented.length, "a code is documented twice");
  assert.equal(new Set(ERROR_CODES).size, ERROR_CODES.length, "a code is declared twice");
});

it("AgentwallError carries its code and is recognisable", () => {
  const e = new AgentwallError("ERR_DECRYPT", "decryption failed");
  assert.equal(e.code, "ERR_DECRYPT");
  assert.ok(e instanceof Error);
  assert.ok(isErrorCode("ERR_DECRYPT"));
  assert.ok(!isErrorCode("ERR_NOPE"));
});
