import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { StoredHash, chunkListProblem } from "../../../lib/store/chunks.js";

const K = 64 * 1024;
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("StoredHash", () => {
  it.each([0, 1, K - 1, K, K + 1, 3 * K, 3 * K + 17])("hashes %i bytes whole and per chunk, however the writes are cut", (n) => {
    const data = randomBytes(n);
    for (const cut of [1000, 7777, K, 5 * K]) {
      const h = new StoredHash(K);
      for (let at = 0; at < n; at += cut) h.update(data.subarray(at, at + cut));
      const r = h.finish();
      expect(r.sha256).toBe(sha(data));
      expect(r.bytes).toBe(n);
      const want = [];
      for (let at = 0; at < n; at += K) want.push(sha(data.subarray(at, at + K)));
      expect(r.chunks).toEqual({ size: K, sha256: want });
    }
  });
});

describe("chunkListProblem", () => {
  const h = "a".repeat(64);
  it.each([
    [{ size: K, sha256: [h, h] }, K + 1, null],
    [{ size: K, sha256: [] }, 0, null],
    [{ size: K, sha256: [h] }, K + 1, "lists 1 chunk(s), but a file of 65537 bytes in chunks of 65536 has 2"],
    [{ size: 1024, sha256: [h] }, 10, "has size 1024, not a whole number of bytes between 65536 and 67108864"],
    [{ size: K, sha256: ["x"] }, 10, "has a sha256 list that is not a list of sha256 hashes"],
    [[h], 10, "is not an object with size and sha256"],
    [null, 10, "is not an object with size and sha256"],
  ])("%j for %i bytes: %s", (v, bytes, problem) => {
    expect(chunkListProblem(v, bytes)).toBe(problem);
  });
});
