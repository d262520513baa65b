// The process layer with real programs: what a caller gets back when a child succeeds,
// fails, cannot start or is killed, and that secrets never reach the error.
import { describe, expect, it } from "vitest";
import { ProcessError, runCommand, spawnFilter, start } from "../../../lib/core/proc.js";
import { Secret } from "../../../lib/core/secret.js";

const env = { PATH: process.env.PATH };

describe("runCommand", () => {
  it("returns stdout and feeds input on stdin", async () => {
    expect(await runCommand("sh", ["-c", "tr a-z A-Z"], { env, input: "hello\n" })).toBe("HELLO\n");
  });

  it("names the program, its exit status and the end of its stderr, with secrets redacted", async () => {
    const secret = new Secret("s3cr3t-pw");
    const err = await runCommand("sh", ["-c", "echo 'noise' >&2; echo 'password s3cr3t-pw rejected' >&2; exit 3"], { env, secrets: [secret] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProcessError);
    expect((err as ProcessError).exitCode).toBe(3);
    expect((err as Error).message).toBe("sh exited with 3: noise\npassword [redacted] rejected");
  });

  it("says a missing program is not installed (exit 127) instead of throwing a spawn error", async () => {
    await expect(runCommand("pgsb-no-such-program", [], { env })).rejects.toThrow("pgsb-no-such-program exited with 127 (program not found): pgsb-no-such-program is not installed or not on PATH");
  });
});

describe("start", () => {
  it("reports a child killed by a signal", async () => {
    const child = start("sleep", ["30"], { env });
    child.kill();
    await expect(child.done).rejects.toThrow("sleep was killed by SIGKILL");
    expect((await child.exit).signal).toBe("SIGKILL");
  });

  it("hands one child's stdout to another's stdin without the bytes passing through us", async () => {
    const sink = spawnFilter("wc", ["-c"], env);
    const out: Buffer[] = [];
    sink.stdout?.on("data", (d: Buffer) => out.push(d));
    const source = start("head", ["-c", "3000000", "/dev/zero"], { env, stdout: sink.stdin ?? "ignore" });
    await source.done;
    sink.stdin?.end();
    await sink.done;
    expect(Buffer.concat(out).toString().trim()).toBe("3000000");
  });

  it("a filter that exits early does not crash the writer with EPIPE; done carries the status", async () => {
    const f = spawnFilter("sh", ["-c", "head -c 10 >/dev/null; echo 'filter failed' >&2; exit 1"], env);
    f.stdout?.resume();
    for (let i = 0; i < 200 && !(f.stdin?.destroyed ?? true); i++) f.stdin?.write(Buffer.alloc(1 << 16));
    await expect(f.done).rejects.toThrow("sh exited with 1: filter failed");
  });
});
