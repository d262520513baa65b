import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// The layers of docs/architecture.md "Architecture", lowest first. A file may import its own wing and any
// wing of a lower rank; wings of the same rank (keys and sql, postgres and s3, wal and restore,
// verify and offsite …) stay out of each other. offsite/ (the physical tier in the S3 bucket)
// sits above pitr/ and retention/ because it restores from the bucket and prunes it by their plans.
const RANKS: Record<string, number> = {
  core: 0,
  keys: 1,
  sql: 1,
  config: 2,
  store: 2,
  notify: 3,
  postgres: 4,
  s3: 4,
  backup: 5,
  physical: 5,
  restore: 6,
  wal: 6,
  base: 7,
  receiver: 7,
  pitr: 8,
  retention: 8,
  verify: 9,
  offsite: 9,
  tasks: 10,
};

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

interface Edge {
  from: string;
  to: string;
}

/** "lib/restore/exec.ts" -> "restore", "tasks/cli.ts" -> "tasks"; null outside lib/ and tasks/. */
function wingOf(path: string): string | null {
  const parts = path.split("/");
  if (parts[0] === "tasks") return "tasks";
  if (parts[0] === "lib") return parts.length === 3 ? (parts[1] as string) : "lib-root";
  return null;
}

function violations(edges: readonly Edge[]): string[] {
  const found: string[] = [];
  for (const { from, to } of edges) {
    const a = wingOf(from);
    const b = wingOf(to);
    if (a === null || b === null || a === b) continue;
    const ra = RANKS[a];
    const rb = RANKS[b];
    if (ra === undefined) found.push(`${from}: "${a}" is not a known wing`);
    else if (rb === undefined) found.push(`${from} imports ${to}: "${b}" is not a known wing`);
    else if (rb >= ra) found.push(`${from} (${a}) imports ${to} (${b}): a wing imports only lower ones`);
  }
  return found;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(join(ROOT, path)).isDirectory()) return sourceFiles(path);
    return path.endsWith(".ts") ? [path] : [];
  });
}

const SPECIFIER = /(?:from\s+|import\s*\(?\s*)"(\.{1,2}\/[^"]+)\.js"/g;

function importEdges(): Edge[] {
  return [...sourceFiles("lib"), ...sourceFiles("tasks")].flatMap((from) =>
    [...readFileSync(join(ROOT, from), "utf8").matchAll(SPECIFIER)].map((m) => ({
      from,
      to: relative(ROOT, resolve(ROOT, dirname(from), `${m[1]}.ts`)),
    })),
  );
}

function cycles(edges: readonly Edge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const { from, to } of edges) next.set(from, [...(next.get(from) ?? []), to]);
  const done = new Set<string>();
  const found: string[][] = [];
  const visit = (node: string, path: string[]): void => {
    const at = path.indexOf(node);
    if (at >= 0) {
      found.push(path.slice(at));
      return;
    }
    if (done.has(node)) return;
    for (const to of next.get(node) ?? []) visit(to, [...path, node]);
    done.add(node);
  };
  for (const node of next.keys()) visit(node, []);
  return found;
}

describe("the layers of lib/", () => {
  const edges = importEdges();

  it("reads the real import graph", () => {
    expect(edges.length).toBeGreaterThan(100);
    expect(edges).toContainEqual({ from: "lib/restore/fileRead.ts", to: "lib/sql/sections.ts" });
  });

  it("keeps every lib file in a capability folder", () => {
    const loose = sourceFiles("lib").filter((path) => wingOf(path) === "lib-root" || path.split("/").length > 3);
    expect(loose).toEqual([]);
    const wings = new Set(sourceFiles("lib").map((path) => wingOf(path)));
    expect([...wings].sort()).toEqual(Object.keys(RANKS).filter((w) => w !== "tasks").sort());
  });

  it("has every import point downward", () => {
    expect(violations(edges)).toEqual([]);
  });

  it("has no import cycles", () => {
    expect(cycles(edges)).toEqual([]);
  });

  it.each([
    ["lib/config/config.ts", "lib/store/naming.ts"],
    ["lib/core/metrics.ts", "lib/store/storage.ts"],
    ["lib/sql/sections.ts", "lib/core/../store/catalog.ts"],
    ["lib/store/catalog.ts", "lib/backup/dump.ts"],
    ["lib/store/storage.ts", "lib/restore/exec.ts"],
    ["lib/postgres/lock.ts", "lib/s3/client.ts"],
    ["lib/s3/mirror.ts", "lib/postgres/connection.ts"],
    ["lib/backup/dump.ts", "lib/restore/psql.ts"],
    ["lib/restore/exec.ts", "lib/verify/checks.ts"],
    ["lib/verify/checks.ts", "tasks/verify.ts"],
    ["lib/newwing/thing.ts", "lib/core/errors.ts"],
    ["lib/core/log.ts", "lib/config/config.ts"],
    ["lib/keys/signing.ts", "lib/config/envValues.ts"],
    ["lib/config/config.ts", "lib/s3/client.ts"],
    ["lib/wal/archive.ts", "lib/base/catalog.ts"],
    ["lib/base/catalog.ts", "lib/receiver/supervisor.ts"],
    ["lib/receiver/fork.ts", "lib/pitr/plan.ts"],
    ["lib/pitr/plan.ts", "lib/retention/physicalPlan.ts"],
    ["lib/physical/layout.ts", "lib/wal/archive.ts"],
    ["lib/restore/exec.ts", "lib/wal/archive.ts"],
    ["lib/loose.ts", "lib/core/errors.ts"],
    ["lib/s3/objects.ts", "lib/wal/readFile.ts"],
    ["lib/s3/client.ts", "lib/physical/layout.ts"],
    ["lib/receiver/walUploader.ts", "lib/offsite/physicalMirror.ts"],
    ["lib/pitr/restore.ts", "lib/offsite/walSource.ts"],
    ["lib/retention/physicalPlan.ts", "lib/offsite/prunePlan.ts"],
    ["lib/offsite/pitrPlan.ts", "lib/verify/physical.ts"],
    ["lib/verify/physical.ts", "lib/offsite/remoteBases.ts"],
    ["lib/offsite/physicalMirror.ts", "tasks/mirror.ts"],
  ])("flags a wrong import: %s -> %s", (from, to) => {
    expect(violations([{ from, to: relative(ROOT, resolve(ROOT, to)) }])).toHaveLength(1);
  });

  it.each([
    ["lib/restore/exec.ts", "lib/backup/dump.ts"],
    ["lib/verify/stream.ts", "lib/restore/decompress.ts"],
    ["lib/retention/cleanup.ts", "lib/store/naming.ts"],
    ["lib/store/naming.ts", "lib/core/codec.ts"],
    ["lib/sql/sections.ts", "lib/sql/splitter.ts"],
    ["tasks/backup.ts", "lib/s3/mirror.ts"],
    ["lib/config/config.ts", "lib/keys/signing.ts"],
    ["lib/base/manifest.ts", "lib/wal/timelineHistory.ts"],
    ["lib/pitr/restore.ts", "lib/base/catalog.ts"],
    ["lib/retention/physicalCleanup.ts", "lib/base/catalog.ts"],
    ["lib/verify/physical.ts", "lib/pitr/plan.ts"],
    ["lib/receiver/walUploader.ts", "lib/s3/objects.ts"],
    ["lib/offsite/remoteBases.ts", "lib/pitr/trustedBase.ts"],
    ["lib/offsite/prunePlan.ts", "lib/retention/physicalPlan.ts"],
    ["lib/offsite/physicalMirror.ts", "lib/receiver/walUpload.ts"],
    ["tasks/restorePitr.ts", "lib/offsite/pitrPlan.ts"],
  ])("allows a downward import: %s -> %s", (from, to) => {
    expect(violations([{ from, to }])).toEqual([]);
  });

  it("finds a cycle", () => {
    const edges = [
      { from: "a", to: "b" },
      { from: "b", to: "c" },
      { from: "c", to: "a" },
      { from: "c", to: "d" },
    ];
    expect(cycles(edges)).toEqual([["a", "b", "c"]]);
  });
});
