import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { argumentsDigest, canonicalJson } from "../dist/index.js";

test("canonical JSON follows RFC 8785", () => {
  assert.equal(canonicalJson({ b: 1, a: [1e21, -0, 0.1 + 0.2, 1e-7, true, null] }), '{"a":[1e+21,0,0.30000000000000004,1e-7,true,null],"b":1}');
  // keys sort by UTF-16 code units: U+1F600 (a surrogate pair, 0xD83D…) before U+FB33
  assert.equal(canonicalJson({ "\ufb33": 1, "\u{1f600}": 2, "\u00e9": 3 }), '{"\u00e9":3,"\u{1f600}":2,"\ufb33":1}');
  assert.equal(canonicalJson("\u0001\n\u2028"), '"\\u0001\\n\u2028"');
  assert.throws(() => canonicalJson(Number.NaN), RangeError);
});

test("argumentsDigest is sha256: and the hex of the canonical JSON", async () => {
  assert.equal(await argumentsDigest(null), "sha256:74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b");
  assert.match(await argumentsDigest({ a: 1 }), /^sha256:[0-9a-f]{64}$/);
  assert.equal(await argumentsDigest({ a: 1, b: 2 }), await argumentsDigest({ b: 2, a: 1 }));
});

const cases = process.env.APPROVALS_TEST_DIGESTS;
test(
  "argumentsDigest matches the Python approvals.digest.arguments_digest",
  { skip: cases ? false : "APPROVALS_TEST_DIGESTS (a JSON file of cases) is not set" },
  async () => {
    const expected = JSON.parse(readFileSync(cases, "utf8"));
    assert.ok(expected.length >= 5);
    for (const { arguments: args, digest } of expected) {
      assert.equal(await argumentsDigest(args), digest, `digest of ${JSON.stringify(args)}`);
    }
  },
);
