import { describe, expect, it } from "vitest";
import { start } from "../../../lib/core/proc.js";
import { Interrupted, ShutdownRegistry, shutdown } from "../../../lib/core/shutdown.js";

const never = () => new Promise<void>(() => undefined);
const after = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe("ShutdownRegistry", () => {
  it("releases newest first and skips what was released normally", async () => {
    const r = new ShutdownRegistry();
    const order: string[] = [];
    r.register("lock", () => void order.push("lock"));
    r.register("partial", async () => {
      await after(5);
      order.push("partial");
    });
    const done = r.register("finished child", () => void order.push("finished child"));
    r.register("pg_dump", () => void order.push("pg_dump"));
    done();
    r.begin("SIGTERM");
    const out = await r.releaseAll(1000, 1000);
    expect(order).toEqual(["pg_dump", "partial", "lock"]);
    expect(out).toEqual({ released: ["pg_dump", "partial", "lock"], failed: [], timedOut: [], skipped: [] });
  });

  it("leaves a hanging releaser behind after its step time and still runs the older ones", async () => {
    const r = new ShutdownRegistry();
    const order: string[] = [];
    r.register("lock", () => void order.push("lock"));
    r.register("stuck", never);
    const t0 = Date.now();
    const out = await r.releaseAll(5000, 50);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(out.timedOut).toEqual(["stuck"]);
    expect(out.released).toEqual(["lock"]);
  });

  it("stops at the overall deadline and names what it did not run", async () => {
    const r = new ShutdownRegistry();
    r.register("lock", () => undefined);
    r.register("scratch cluster", () => undefined);
    r.register("stuck 1", never);
    r.register("stuck 2", never);
    const t0 = Date.now();
    const out = await r.releaseAll(120, 100);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(out.timedOut).toEqual(["stuck 2", "stuck 1"]);
    expect(out.skipped).toEqual(["scratch cluster", "lock"]);
    expect(out.released).toEqual([]);
  });

  it("reports a failing releaser and goes on, also for one that throws synchronously", async () => {
    const r = new ShutdownRegistry();
    r.register("lock", () => undefined);
    r.register("sync", () => {
      throw new Error("boom");
    });
    r.register("async", () => Promise.reject(new Error("gone")));
    const out = await r.releaseAll(1000, 1000);
    expect(out.failed).toEqual([
      { label: "async", error: "gone" },
      { label: "sync", error: "boom" },
    ]);
    expect(out.released).toEqual(["lock"]);
  });

  it("runs releasers registered while it releases (a resource acquired as the signal came)", async () => {
    const r = new ShutdownRegistry();
    const order: string[] = [];
    r.register("lock", () => void order.push("lock"));
    r.register("child", () => {
      order.push("child");
      r.register("late partial", () => void order.push("late partial"));
    });
    await r.releaseAll(1000, 1000);
    expect(order).toEqual(["child", "late partial", "lock"]);
  });

  it("begins once: a second signal changes nothing; afterwards nothing new may start", () => {
    const r = new ShutdownRegistry();
    expect(r.signal).toBeNull();
    expect(() => r.assertRunning("pg_dump not started")).not.toThrow();
    expect(r.begin("SIGINT")).toBe(true);
    expect(r.begin("SIGTERM")).toBe(false);
    expect(r.signal).toBe("SIGINT");
    expect(() => r.assertRunning("pg_dump not started")).toThrow(Interrupted);
  });
});

// Last in this file: it begins the process registry's shutdown, which cannot be undone.
describe("child processes (lib/core/proc.ts) in the process registry", () => {
  it("stops a running child on a signal, SIGKILL for one that ignores SIGTERM; its exit is never reported; nothing new starts", async () => {
    const child = start("sh", ["-c", 'trap "" TERM; echo ready; exec sleep 30'], { env: process.env, stdout: "pipe" });
    // The trap must be in place before the signal, or SIGTERM ends the shell before it ignores it.
    await new Promise<void>((resolve) => child.stdout?.once("data", () => resolve()));
    let reported = false;
    void child.exit.then(() => (reported = true));
    expect(shutdown.begin("SIGTERM")).toBe(true);
    const t0 = Date.now();
    const out = await shutdown.releaseAll(5000, 3000);
    expect(out.released).toEqual([`sh (pid ${child.process.pid})`]);
    expect(child.process.signalCode).toBe("SIGKILL");
    // Escalated after the 1 s grace, not after the 3 s step limit.
    expect(Date.now() - t0).toBeLessThan(2900);
    await after(200);
    expect(reported).toBe(false);
    expect(() => start("true", [], { env: process.env })).toThrow(Interrupted);
  });
});
