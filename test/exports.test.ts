// Every subpath of package.json "exports" resolves from the built package (self-reference by name),
// and names at least one export: what `import ... from "agentwall/<x>"` gives a user.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";

const pkg = JSON.parse(readFileSync(join(import.meta.dirname, "../package.json"), "utf8")) as {
  exports: Record<string, unknown>;
};

it("every package subpath imports and exports something", async () => {
  const subpaths = Object.keys(pkg.exports).filter((k) => !k.includes("*") && k !== "./package.json");
  assert.ok(subpaths.includes("./channel") && subpaths.includes("./egress"), subpaths.join(" "));
  for (const subpath of subpaths) {
    const name = subpath === "." ? "agentwall" : `agentwall/${subpath.slice(2)}`;
    const mod = (await import(name)) as Record<string, unknown>;
    assert.ok(Object.keys(mod).length > 0, `${name} exports nothing`);
  }
});
