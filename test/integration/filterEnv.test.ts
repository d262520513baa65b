// Compressors and decompressors only move bytes: a fake zstd first on PATH records the
// environment it was started with and hands over to the real one, and neither direction
// (backup, verify reading back, restore's list-databases stream) may see a PG* or AWS_* variable.
import { chmodSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { which } from "../../lib/core/bin.js";
import { TEST_PASSWORD } from "../cluster.js";
import { cliEnv, runCli, tempDir } from "../helpers.js";

const cluster = inject("cluster");

/** A zstd that writes `env` and its arguments to a file in `out`, then runs the real zstd. */
function fakeZstd(out: string): string {
  const real = which("zstd");
  if (real === null) throw new Error("zstd is not installed");
  const bin = tempDir("pgsb-fakebin-");
  writeFileSync(join(bin, "zstd"), `#!/bin/sh\n{ echo "ARGS $*"; env; } > "${out}/env.$$"\nexec ${real} "$@"\n`);
  chmodSync(join(bin, "zstd"), 0o755);
  return bin;
}

function recorded(out: string): { args: string; env: string[] }[] {
  return readdirSync(out).map((f) => {
    const lines = readFileSync(join(out, f), "utf8").split("\n");
    return { args: lines[0] ?? "", env: lines.slice(1).filter((l) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(l)) };
  });
}

describe("compressor environment", () => {
  it("gives the compressor and the decompressor no libpq or AWS variables", async () => {
    const out = tempDir("pgsb-envrec-");
    mkdirSync(out, { recursive: true });
    const dir = tempDir();
    const env = {
      ...cliEnv(cluster, dir, { BACKUP_COMPRESSION: "zstd", PGHOST: "127.0.0.1", PGPASSWORD: TEST_PASSWORD, PGAPPNAME: "recorded", AWS_SECRET_ACCESS_KEY: "not-for-zstd" }),
      PATH: `${fakeZstd(out)}:${process.env.PATH ?? ""}`,
    };
    const b = await runCli(["backup", "full", "--force"], env);
    expect(b.code, b.stderr).toBe(0);
    const name = readdirSync(join(dir, "full")).find((f) => f.endsWith(".sql.zst"));
    expect(name).toBeDefined();
    const v = await runCli(["verify", "--max-age", "1000"], env);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    // list-databases of a file without a manifest streams it the way restore does.
    const plain = join(tempDir(), name as string);
    writeFileSync(plain, readFileSync(join(dir, "full", name as string)));
    const l = await runCli(["list-databases", plain], env);
    expect(l.code, l.stderr).toBe(0);

    const runs = recorded(out);
    expect(runs.filter((r) => !r.args.includes("-d")).length).toBeGreaterThanOrEqual(1);
    expect(runs.filter((r) => r.args.includes("-d")).length).toBeGreaterThanOrEqual(2);
    for (const r of runs) {
      expect(r.env.filter((l) => /^(PG|AWS_)/.test(l)), r.args).toEqual([]);
      expect(r.env.join("\n")).not.toContain(TEST_PASSWORD);
      expect(r.env.some((l) => l.startsWith("PATH="))).toBe(true);
    }
  });
});
