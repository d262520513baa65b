import { describe, expect, it } from "vitest";
import { decodeBech32, encodeBech32 } from "../../../lib/keys/bech32.js";

describe("decodeBech32", () => {
  it.each([
    // BIP 173's valid test vectors.
    ["A12UEL5L", "a", ""],
    ["a12uel5l", "a", ""],
    ["abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw", "abcdef", "00443214c74254b635cf84653a56d7c675be77df"],
  ])("decodes %s", (text, hrp, hex) => {
    expect(decodeBech32(text)).toEqual({ hrp, data: Buffer.from(hex, "hex") });
  });

  it.each([
    ["A1G7SGD8", "checksum made over the upper-case hrp"],
    ["10a06t8", "empty hrp"],
    ["1qzzfhee", "empty hrp"],
    ["x1b4n0q5v", "a character outside the alphabet"],
    ["li1dgmt3", "checksum too short"],
    ["A12uEL5L", "mixed case"],
    ["a12uel5m", "a changed character"],
  ])("rejects %s (%s)", (text) => {
    expect(decodeBech32(text)).toBeNull();
  });

  it("round-trips 32 bytes under age's hrp", () => {
    const data = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 37) & 0xff));
    const text = encodeBech32("age", data);
    expect(text).toMatch(/^age1[02-9ac-hj-np-z]{58}$/);
    expect(decodeBech32(text)).toEqual({ hrp: "age", data });
    expect(decodeBech32(text.toUpperCase())).toEqual({ hrp: "age", data });
  });
});
