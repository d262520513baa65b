// `npm run bench -- [--scale N] [--reps N] [--quick] [--only full,incremental,restore,pgbackrest,base,pitr,wal]`
// Builds the dataset in throwaway clusters, measures every case side by side, and writes
// bench/results/<date>.json and .md. Clusters and temp dirs are removed however it ends.
import { execFileSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { resolveConfig } from "../lib/config/config.js";
import type { BenchCluster } from "./cluster.js";
import { destroyCluster, startCluster } from "./cluster.js";
import type { Context } from "./cases.js";
import { fullGroup, incrementalGroup, pgbackrestGroup } from "./cases.js";
import { restoreGroup } from "./restore.js";
import { baseGroup } from "./base.js";
import { pitrGroup } from "./pitr.js";
import { walLagGroup } from "./walLag.js";
import { buildMainDataset, SMALL_DATABASES } from "./dataset.js";
import { ensureTimeBinary } from "./measure.js";
import { ARCHIVE_SETTINGS, pgbackrestInstalled, setUpPgBackRest } from "./pgbackrest.js";
import { Results, rerender, writeResults } from "./report.js";

const DEFAULT_SCALE = 10;
const GROUPS = ["full", "incremental", "restore", "pgbackrest", "base", "pitr", "wal"] as const;
type Group = (typeof GROUPS)[number];

const t0 = Date.now();
function say(msg: string): void {
  const s = Math.round((Date.now() - t0) / 1000);
  process.stdout.write(`[bench ${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}] ${msg}\n`);
}

function version(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"] }).toString().split("\n")[0]?.trim() ?? "?";
  } catch (err) {
    const e = err as { stderr?: Buffer };
    return e.stderr?.toString().split("\n")[0]?.trim() || "not installed";
  }
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName("bench")
    .option("scale", { type: "number", default: DEFAULT_SCALE, describe: "pgbench scale; the text/jsonb table gets 20 000 rows per unit (30 = the issue's 950 MB cluster)" })
    .option("reps", { type: "number", default: 3, describe: "repetitions of each case; the median is reported" })
    .option("quick", { type: "boolean", default: false, describe: "a smoke run: scale 1, one repetition" })
    .option("only", { type: "string", describe: `comma-separated groups to run: ${GROUPS.join(",")}` })
    .option("render", { type: "string", describe: "measure nothing: write the .md of this results .json again" })
    .strict()
    .help()
    .parse();
  if (argv.render !== undefined) {
    say(`wrote ${rerender(argv.render)}`);
    return;
  }
  const scale = argv.quick ? 1 : Math.max(1, Math.round(argv.scale));
  const reps = argv.quick ? 1 : Math.max(1, Math.round(argv.reps));
  const only = new Set<Group>((argv.only?.split(",").map((s) => s.trim()) ?? [...GROUPS]) as Group[]);
  for (const g of only) if (!GROUPS.includes(g)) throw new Error(`--only: unknown group "${g}"; use ${GROUPS.join(",")}`);

  const cores = availableParallelism();
  const cli = fileURLToPath(new URL("../tasks/cli.js", import.meta.url));
  const resultsDir = fileURLToPath(new URL("../../bench/results", import.meta.url));
  const root = mkdtempSync(join(tmpdir(), "pgsb-bench-"));
  chmodSync(root, 0o755); // the server's OS user must reach its cluster dirs inside
  const clusters = new Set<BenchCluster>();
  const children = new Set<ChildProcess>();
  const teardown = () => {
    for (const child of children) child.kill("SIGTERM");
    for (const c of [...clusters].reverse()) destroyCluster(c);
    clusters.clear();
    rmSync(root, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    say(`${signal}: stopping the clusters and removing ${root}`);
    teardown();
    process.kill(process.pid, signal);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const results = new Results();
  const ctx: Context = {
    root,
    reps,
    cores,
    cli,
    zstdLevel: resolveConfig({ BACKUP_COMPRESSION: "zstd" }).compression.level ?? 3,
    bzip2Level: resolveConfig({ BACKUP_COMPRESSION: "bzip2" }).compression.level ?? 9,
    results,
    say,
    own: (c) => (clusters.add(c), c),
    disown: (c) => clusters.delete(c),
    track: (child) => (children.add(child), () => children.delete(child)),
  };
  const withBackRest = only.has("pgbackrest") && pgbackrestInstalled();
  const meta: Record<string, unknown> = {
    date: new Date().toISOString().slice(0, 10),
    scale,
    reps,
    cores,
    memoryGB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    postgres: version("pg_dump", ["--version"]),
    tools: [version("lbzip2", ["--version"]), version("zstd", ["-V"]), version("pgbackrest", ["version"])].join("; "),
    settings: "throwaway clusters: fsync=off, synchronous_commit=off, autovacuum=off, shared_buffers=256MB; unix socket, trust",
    command: `npm run bench --${scale === DEFAULT_SCALE ? "" : ` --scale ${scale}`}${reps === 3 ? "" : ` --reps ${reps}`}${argv.quick ? " --quick" : ""}${argv.only === undefined ? "" : ` --only ${argv.only}`}`.replace(/ --$/, ""),
  };
  try {
    say(`scale ${scale}, ${reps} repetition(s), ${cores} cores, groups: ${[...only].join(", ")}; temp root ${root}`);
    if (ensureTimeBinary(say) === null) say("/usr/bin/time unavailable: peak RSS from /proc VmHWM polling only");
    if (only.has("pgbackrest") && !withBackRest) say("pgbackrest is not installed: its cases are skipped (apt-get install -y pgbackrest to include them)");
    const mainCluster = ctx.own(await startCluster(root, "main", withBackRest ? ARCHIVE_SETTINGS : []));
    say("building the dataset");
    const dataset = await buildMainDataset(mainCluster, scale, say);
    const mb = (b: number) => `${(b / 1e6).toFixed(0)} MB`;
    meta.dataset = `pgbench -s ${scale} in "bench", ${dataset.docsRows} text/jsonb rows in "app", ${SMALL_DATABASES.length} small databases; ${mb(dataset.totalBytes)} on disk (${dataset.databases.map((d) => `${d.name} ${mb(d.bytes)}`).join(", ")})`;
    meta.databases = dataset.databases;
    say(`dataset: ${String(meta.dataset)}`);
    if (only.has("full")) await fullGroup(ctx, mainCluster);
    if (only.has("base")) await baseGroup(ctx, mainCluster);
    if (only.has("pitr")) await pitrGroup(ctx, mainCluster);
    if (only.has("wal")) await walLagGroup(ctx, mainCluster);
    if (only.has("incremental")) await incrementalGroup(ctx, scale);
    if (only.has("restore")) await restoreGroup(ctx, mainCluster);
    if (withBackRest) {
      say("setting up pgBackRest (repository, archive-push, stanza-create, check)");
      await pgbackrestGroup(ctx, setUpPgBackRest(mainCluster, root), mainCluster);
    } else if (only.has("pgbackrest")) {
      const c = results.add("pgbackrest_full", "pgBackRest full (zst)", null);
      c.skipped = "pgbackrest is not installed";
    }
  } finally {
    teardown();
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
  }
  meta.seconds = Math.round((Date.now() - t0) / 1000);
  const stem = `${String(meta.date)}${argv.quick ? "-quick" : scale === DEFAULT_SCALE ? "" : `-scale${scale}`}`;
  const files = writeResults(resultsDir, stem, results, meta);
  say(`wrote ${files.json} and ${files.md}`);
  for (const c of results.cases.values()) {
    if (c.skipped !== null) process.stdout.write(`  ${c.label}: skipped (${c.skipped})\n`);
    else process.stdout.write(`  ${c.label}: ${c.median?.toFixed(2)} s${c.peakRssKB === null ? "" : `, peak RSS ${(c.peakRssKB / 1024).toFixed(0)} MB`}\n`);
  }
  process.stdout.write("targets (ours / baseline):\n");
  for (const t of results.targets()) {
    const unit = t.kind === "ratio" ? "x" : t.kind === "seconds" ? " s" : " MB";
    const v = t.value === null ? "not measured" : `${t.value.toFixed(2)}${unit}`;
    process.stdout.write(`  ${t.met === null ? "  -  " : t.met ? " met " : "MISSED"} ${t.name}: ${v} (limit ${t.strict ? "<" : "<="} ${t.limit}${unit})\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
