// The restore group: restore-latest against the same-codec stock pipeline (`lbzip2 -dc FULL |
// psql`, `zstd -dc FULL | psql`), each into a fresh cluster, side by side per repetition; the
// same on a schema-heavy database (thousands of small objects), where per-statement costs
// dominate; and the seed's `bunzip2 -c | psql` as before. For each of our restores the bytes
// read of every file, from the restore's own log line, against the file's size: one read each.
import { statSync } from "node:fs";
import type { BenchCluster } from "./cluster.js";
import { asServerUser, destroyCluster, query, startCluster } from "./cluster.js";
import type { Context } from "./cases.js";
import { backupFiles, freshDir, ours, brief, expectOutput } from "./cases.js";
import type { Run } from "./measure.js";
import { shell, sq } from "./measure.js";

/** Tables, each with an index, a view and a function: the schema-heavy case's objects per unit. */
const SCHEMA_TABLES = 1500;

async function databaseCount(c: BenchCluster): Promise<number> {
  const rows = await query<{ n: string }>(c, "postgres", "SELECT count(*)::text AS n FROM pg_database WHERE datname <> 'template0'");
  return Number(rows[0]?.n ?? 0);
}

/** Bytes read / file size of each file our restore read, from its "checksums verified" log line. */
function readRatios(run: Run): number[] {
  for (const line of run.stderr.split("\n")) {
    if (!line.includes("checksums verified for")) continue;
    const entry = JSON.parse(line) as { reads?: { file: string; bytesRead: number }[] };
    return (entry.reads ?? []).map((r) => r.bytesRead);
  }
  return [];
}

/** A cluster whose one database holds SCHEMA_TABLES small tables with an index, a view and a function each. */
async function schemaHeavy(ctx: Context): Promise<BenchCluster> {
  const c = ctx.own(await startCluster(ctx.root, "schema"));
  asServerUser("psql", ["-X", "-q", "-h", c.socketDir, "-p", String(c.port), "-d", "postgres", "-c", "CREATE DATABASE objects"]);
  const ddl = `DO $$ BEGIN FOR i IN 1..${SCHEMA_TABLES} LOOP
    EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text DEFAULT %L, n numeric CHECK (n >= 0))', i, 'x' || i);
    EXECUTE format('CREATE INDEX ON t%s (v)', i);
    EXECUTE format('INSERT INTO t%s SELECT g, %L, g FROM generate_series(1, 20) g', i, 'v' || i);
    EXECUTE format('CREATE VIEW v%s AS SELECT id, v FROM t%s WHERE n > 1', i, i);
    EXECUTE format('CREATE FUNCTION f%s() RETURNS bigint LANGUAGE sql AS %L', i, 'SELECT count(*) FROM t' || i);
  END LOOP; END $$;`;
  asServerUser("psql", ["-X", "-q", "-h", c.socketDir, "-p", String(c.port), "-d", "objects", "-c", ddl]);
  return c;
}

export async function restoreGroup(ctx: Context, main: BenchCluster): Promise<void> {
  const { results: R, say } = ctx;
  const seed = R.add("seed_restore", "seed: bunzip2 -c FULL | psql (fresh cluster)", null);
  const legacy = R.add("ours_restore", "ours: restore-latest, bzip2 (fresh cluster)", "seed_restore");
  const cases = [
    { codec: "bzip2", stock: R.add("stock_restore_bz2", `lbzip2 -dc -n${ctx.cores} FULL | psql (fresh cluster)`, null), mine: legacy, decompress: `lbzip2 -dc -n ${ctx.cores}` },
    { codec: "zstd", stock: R.add("stock_restore_zstd", "zstd -dc FULL | psql (fresh cluster)", null), mine: R.add("ours_restore_zstd", "ours: restore-latest, zstd (fresh cluster)", "stock_restore_zstd"), decompress: "zstd -dc -q" },
  ];
  const schemaStock = R.add("stock_restore_schema", `zstd -dc FULL | psql, ${SCHEMA_TABLES} tables x (table, index, view, function)`, null);
  const schemaMine = R.add("ours_restore_schema", `ours: restore-latest, zstd, ${SCHEMA_TABLES} tables x (table, index, view, function)`, "stock_restore_schema");
  const schema = await schemaHeavy(ctx);
  const sources = [
    ...cases.map((k) => ({ ...k, cluster: main, label: k.codec })),
    { codec: "zstd", stock: schemaStock, mine: schemaMine, decompress: "zstd -dc -q", cluster: schema, label: "schema" },
  ].map((k) => ({ ...k, dir: freshDir(ctx, `restore-${k.label}`) }));
  for (const s of sources) {
    expectOutput(await ours(ctx, s.cluster, s.dir, ["backup", "full", "--force"], { BACKUP_COMPRESSION: s.codec }), /full backup written/, `the ${s.label} full to restore`);
  }
  const expected = new Map<string, number>();
  for (const s of sources) expected.set(s.label, await databaseCount(s.cluster));
  destroyCluster(schema);
  ctx.disown(schema);
  /** Runs one restore into a fresh cluster, checks the databases arrived, records it. */
  const restoreInto = async (c: typeof seed, label: string, tag: string, restore: (target: BenchCluster) => Promise<Run>): Promise<Run> => {
    const target = ctx.own(await startCluster(ctx.root, `restore-${c.id}`));
    try {
      const run = await restore(target);
      const n = await databaseCount(target);
      if (n !== expected.get(label)) throw new Error(`${c.label}: ${n} databases after the restore, expected ${expected.get(label)}`);
      R.record(c, run);
      say(`${c.label}: ${brief(run)} (${tag})`);
      return run;
    } finally {
      destroyCluster(target);
      ctx.disown(target);
    }
  };
  const bz2 = sources[0];
  for (let rep = 0; rep < ctx.reps; rep++) {
    const tag = `rep ${rep + 1}/${ctx.reps}`;
    for (const s of sources) {
      const file = backupFiles(s.dir, "full")[0] as string;
      const run = await restoreInto(s.mine, s.label, tag, (target) => ours(ctx, target, s.dir, ["restore-latest"]));
      const read = readRatios(run);
      s.mine.note = `bytes read per file: ${read.map((b) => `${(b / statSync(file).size).toFixed(2)}x its size`).join(", ") || "not logged"}`;
      await restoreInto(s.stock, s.label, tag, (target) => shell(`${s.decompress} ${sq(file)} | psql -X -q -d postgres > /dev/null 2>&1`, { env: target.env, tmpDir: ctx.root }));
    }
    if (bz2 !== undefined) {
      const file = backupFiles(bz2.dir, "full")[0] as string;
      await restoreInto(seed, bz2.label, tag, (target) => shell(`bunzip2 -c ${sq(file)} | psql -X -q -d postgres > /dev/null 2>&1`, { env: target.env, tmpDir: ctx.root }));
    }
  }
}
