// Real files: one read, only verified bytes handed on, the first bad chunk named.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { renameSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { StoredHash } from "../../../lib/store/chunks.js";
import { IntegrityError, openVerified } from "../../../lib/store/verifiedRead.js";
import type { Expectation } from "../../../lib/store/verifiedRead.js";
import { tempDir } from "../../helpers.js";

const K = 64 * 1024;

function stored(data: Buffer): Expectation {
  const h = new StoredHash(K);
  h.update(data);
  const r = h.finish();
  return { name: "f.sql.zst", chunks: r.chunks, sha256: r.sha256 };
}

/** Everything the stream handed on before it ended or failed, and how it ended. */
async function drain(path: string, expect: Expectation): Promise<{ got: Buffer; error: unknown }> {
  const { stream } = openVerified(path, expect);
  const parts: Buffer[] = [];
  try {
    for await (const c of stream) parts.push(c as Buffer);
    return { got: Buffer.concat(parts), error: null };
  } catch (err) {
    return { got: Buffer.concat(parts), error: err };
  }
}

describe("openVerified", () => {
  const dir = tempDir();
  const data = randomBytes(3 * K + 100);
  const path = join(dir, "f");

  it("hands on every byte of a genuine file, chunk by chunk and as a whole", async () => {
    writeFileSync(path, data);
    expect(await drain(path, stored(data))).toEqual({ got: data, error: null });
    expect(await drain(path, { ...stored(data), chunks: null })).toEqual({ got: data, error: null });
  });

  it.each([
    ["a flipped byte in the last chunk", (b: Buffer) => Buffer.concat([b.subarray(0, b.length - 1), Buffer.from([b[b.length - 1]! ^ 1])]), 4, 3 * K],
    ["a flipped byte in the second chunk", (b: Buffer) => Buffer.concat([b.subarray(0, K + 5), Buffer.from([b[K + 5]! ^ 1]), b.subarray(K + 6)]), 2, K],
    ["truncated at a chunk boundary", (b: Buffer) => b.subarray(0, 2 * K), 3, 2 * K],
    ["truncated inside the last chunk", (b: Buffer) => b.subarray(0, b.length - 1), 4, 3 * K],
    ["grown by a byte", (b: Buffer) => Buffer.concat([b, Buffer.from("x")]), 4, 3 * K],
  ])("%s: fails naming chunk %i and hands on only the chunks before it", async (_what, change, chunk, verified) => {
    writeFileSync(path, change(data));
    const r = await drain(path, stored(data));
    expect(r.error).toBeInstanceOf(IntegrityError);
    expect((r.error as IntegrityError).chunk).toBe(chunk);
    expect(r.got.equals(data.subarray(0, verified))).toBe(true);
  });

  it("without a chunk list, fails at the end on a whole-file mismatch, before the stream ends cleanly", async () => {
    writeFileSync(path, Buffer.concat([data.subarray(0, 10), Buffer.from("!"), data.subarray(11)]));
    const r = await drain(path, { ...stored(data), chunks: null });
    expect(r.error).toBeInstanceOf(IntegrityError);
    expect((r.error as IntegrityError).chunk).toBeNull();
  });

  it("keeps reading what it opened when another file is renamed over the path", async () => {
    writeFileSync(path, data);
    const evil = join(dir, "evil");
    writeFileSync(evil, randomBytes(data.length));
    const { stream } = openVerified(path, stored(data));
    const parts: Buffer[] = [];
    for await (const c of stream) {
      if (parts.length === 0) renameSync(evil, path);
      parts.push(c as Buffer);
    }
    expect(Buffer.concat(parts).equals(data)).toBe(true);
  });

  it("refuses a symlink and a FIFO planted under the name", async () => {
    writeFileSync(join(dir, "real"), data);
    symlinkSync(join(dir, "real"), join(dir, "link"));
    expect(((await drain(join(dir, "link"), stored(data))).error as NodeJS.ErrnoException).code).toBe("ELOOP");
    execFileSync("mkfifo", [join(dir, "fifo")]);
    expect(((await drain(join(dir, "fifo"), stored(data))).error as NodeJS.ErrnoException).code).toBe("EINVAL");
  });
});
