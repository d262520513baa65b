// pgBackRest on the benchmark's main cluster, the tool users compare us with: a repository
// in the bench's temp root, WAL archived by archive-push (pgBackRest's backups wait for the
// WAL that makes them consistent), zstd files, one process per core, an immediate checkpoint.
// It runs as the server's OS user, since it reads the data directory.
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { which } from "../lib/core/bin.js";
import type { BenchCluster } from "./cluster.js";
import { asServerUser, giveToServerUser, psqlScript, reloadCluster, serverUserPrefix } from "./cluster.js";
import type { Run, RunOptions } from "./measure.js";
import { timed } from "./measure.js";

const STANZA = "bench";

/** Settings the main cluster needs from its start (archive_mode needs a restart); WAL is dropped until pgBackRest is set up. */
export const ARCHIVE_SETTINGS = ["archive_mode = on", "archive_command = '/bin/true'"];

export interface PgBackRest {
  version: string;
  backup(type: "full" | "incr", opts: RunOptions): Promise<Run>;
}

export function pgbackrestInstalled(): boolean {
  return which("pgbackrest") !== null;
}

export function setUpPgBackRest(c: BenchCluster, root: string): PgBackRest {
  const dir = join(root, "pgbackrest");
  for (const sub of ["", "repo", "log", "lock", "spool"]) {
    mkdirSync(join(dir, sub), { recursive: true });
    giveToServerUser(join(dir, sub));
  }
  const config = join(dir, "pgbackrest.conf");
  writeFileSync(
    config,
    [
      "[global]",
      `repo1-path=${join(dir, "repo")}`,
      "repo1-retention-full=1000",
      `log-path=${join(dir, "log")}`,
      `lock-path=${join(dir, "lock")}`,
      `spool-path=${join(dir, "spool")}`,
      "log-level-console=warn",
      "log-level-file=off",
      "compress-type=zst",
      `process-max=${availableParallelism()}`,
      "start-fast=y",
      "",
      `[${STANZA}]`,
      `pg1-path=${c.dataDir}`,
      `pg1-socket-path=${c.socketDir}`,
      `pg1-port=${c.port}`,
      "",
    ].join("\n"),
  );
  giveToServerUser(config);
  const cmd = (...args: string[]) => ["pgbackrest", `--config=${config}`, `--stanza=${STANZA}`, ...args];
  psqlScript(c, "postgres", `ALTER SYSTEM SET archive_command = 'pgbackrest --config=${config} --stanza=${STANZA} archive-push %p';`);
  reloadCluster(c);
  asServerUser("pgbackrest", cmd("stanza-create").slice(1));
  asServerUser("pgbackrest", cmd("check").slice(1));
  const version = asServerUser("pgbackrest", ["version"]).trim();
  return {
    version,
    backup: (type, opts) => timed([...serverUserPrefix(), ...cmd(`--type=${type}`, "backup")], opts),
  };
}
