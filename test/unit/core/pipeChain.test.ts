// Real programs joined by OS pipes: the bytes pass between them, not through this process, and
// each reader sees end-of-file when its writer exits.
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { startChain } from "../../../lib/core/pipeChain.js";

const env = { PATH: process.env.PATH };

async function output(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

describe("startChain", () => {
  it("seq | gzip | gzip -d: the last program's stdout is the first's output", async () => {
    const chain = startChain([
      { program: "seq", args: ["1", "200000"], env },
      { program: "gzip", args: ["-1", "-c"], env },
      { program: "gzip", args: ["-d", "-c"], env },
    ]);
    expect(chain.stdin).toBeNull();
    const [out] = await Promise.all([output(chain.stdout), ...chain.children.map((c) => c.done)]);
    expect(out.equals(execFileSync("seq", ["1", "200000"], { maxBuffer: 1 << 24 }))).toBe(true);
  });

  it("with stdin piped: what this process writes goes through every program", async () => {
    const chain = startChain([{ program: "gzip", args: ["-c"], env }, { program: "gzip", args: ["-d", "-c"], env }], "pipe");
    chain.stdin?.end("hello through two pipes\n");
    const [out] = await Promise.all([output(chain.stdout), ...chain.children.map((c) => c.done)]);
    expect(out.toString()).toBe("hello through two pipes\n");
  });

  it("a program that fails reports itself; the next one sees end-of-file and ends", async () => {
    const chain = startChain([{ program: "sh", args: ["-c", "echo partial; exit 3"], env }, { program: "cat", args: [], env }]);
    const [out, first, second] = await Promise.all([output(chain.stdout), chain.children[0]!.done.catch((e: unknown) => e), chain.children[1]!.done]);
    expect(out.toString()).toBe("partial\n");
    expect((first as Error).message).toMatch(/^sh exited with 3/);
    expect(second).toBeUndefined();
  });
});
