/**
 * What an approval signs: `sha256:` and the hex SHA-256 of the arguments' canonical JSON
 * (RFC 8785, the JSON Canonicalization Scheme), the same digest the service computes.
 */

export const PREFIX = "sha256:";

/** The RFC 8785 canonical JSON of a JSON value (as `JSON.parse` gives). */
export function canonicalJson(value: unknown): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "string":
      // JSON.stringify escapes exactly what RFC 8785 asks: `"`, `\`, and control characters
      // (\b \t \n \f \r by name, the rest as \u00xx in lower-case hex).
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) {
        throw new RangeError(`${value} has no canonical JSON`);
      }
      // ECMAScript's Number-to-String is the serialisation RFC 8785 prescribes (-0 is "0").
      return String(value);
    case "object": {
      if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
      const object = value as Record<string, unknown>;
      // The default sort compares UTF-16 code units, as RFC 8785 sorts keys.
      const keys = Object.keys(object)
        .filter((key) => object[key] !== undefined)
        .sort();
      return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(object[key])}`).join(",")}}`;
    }
    default:
      throw new TypeError(`a ${typeof value} has no JSON form`);
  }
}

/** `value` as the JSON the service receives (Dates as strings, undefined fields dropped). */
export function toJson(value: unknown): unknown {
  const text = JSON.stringify(value);
  return text === undefined ? null : JSON.parse(text);
}

function hex(buffer: ArrayBuffer): string {
  return Array.from(new Uint8Array(buffer), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * The digest of `args` as the service computes it (`argumentsDigest` on an approval):
 * `"sha256:"` and the hex SHA-256 of the RFC 8785 canonical JSON. `null` (no arguments)
 * has a digest too.
 */
export async function argumentsDigest(args: unknown): Promise<string> {
  const canonical = canonicalJson(toJson(args ?? null));
  const bytes = new TextEncoder().encode(canonical);
  return PREFIX + hex(await crypto.subtle.digest("SHA-256", bytes));
}
