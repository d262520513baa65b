// Writing into a child's stdin with backpressure, against real processes: a reader that
// falls behind makes the writer wait (nothing lost, no listeners left behind), and a reader
// that goes away is reported as SinkClosedError, not as a hang or an EPIPE crash.
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { spawnFilter } from "../../../lib/core/proc.js";
import { put, relay, SinkClosedError } from "../../../lib/backup/sink.js";

const env = { PATH: process.env.PATH };
const MB = 1 << 20;

function block(i: number): Buffer {
  return Buffer.alloc(MB, i % 251);
}

/** A child that reads nothing for `ms`, then hashes its stdin. */
function slowHasher(ms: number) {
  const child = spawnFilter("sh", ["-c", `sleep ${ms / 1000}; sha256sum`], env);
  const out: Buffer[] = [];
  child.stdout?.on("data", (d: Buffer) => out.push(d));
  return { child, digest: async () => (await child.done, Buffer.concat(out).toString().split(" ")[0]) };
}

describe("put", () => {
  it("waits while a slow reader catches up; every byte arrives, and no listener is left on the sink", async () => {
    const { child, digest } = slowHasher(300);
    const sink = child.stdin!;
    const before = ["drain", "close", "error"].map((e) => sink.listenerCount(e));
    const want = createHash("sha256");
    for (let i = 0; i < 16; i++) {
      want.update(block(i));
      await put(sink, block(i));
    }
    expect(["drain", "close", "error"].map((e) => sink.listenerCount(e))).toEqual(before);
    sink.end();
    expect(await digest()).toBe(want.digest("hex"));
  });

  it("throws SinkClosedError when the reader exits while the writer waits", async () => {
    const child = spawnFilter("sh", ["-c", "head -c 1000 > /dev/null"], env);
    child.stdout?.resume();
    let err: unknown;
    try {
      for (let i = 0; i < 64; i++) await put(child.stdin!, block(i));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SinkClosedError);
    await child.done;
  });
});

describe("relay", () => {
  it("pauses the source while the sink is full and hands every chunk on, in order", async () => {
    const { child, digest } = slowHasher(300);
    const want = createHash("sha256");
    const chunks = Array.from({ length: 24 }, (_, i) => block(i));
    for (const c of chunks) want.update(c);
    let seen = 0;
    await relay(Readable.from(chunks, { objectMode: false }), child.stdin!, (b) => (seen += b.length));
    child.stdin!.end();
    expect(seen).toBe(24 * MB);
    expect(await digest()).toBe(want.digest("hex"));
  });

  it("rejects with SinkClosedError when the sink goes away mid-stream, and with the callback's error when it throws", async () => {
    const child = spawnFilter("sh", ["-c", "head -c 1000 > /dev/null"], env);
    child.stdout?.resume();
    const endless = new Readable({ read() { this.push(block(1)); } });
    await expect(relay(endless, child.stdin!, () => undefined)).rejects.toBeInstanceOf(SinkClosedError);
    const other = spawnFilter("cat", [], env);
    other.stdout?.resume();
    await expect(relay(Readable.from([block(2)]), other.stdin!, () => { throw new Error("counter failed"); })).rejects.toThrow("counter failed");
    other.stdin!.end();
    await other.done;
  });
});
