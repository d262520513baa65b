// Carrying out a PitrPlan into a data directory: the base backup's sidecars (signature, with a
// verify key) and manifest are checked by the caller (trustBase), then everything is built in a
// fresh DIR.<random>.partial beside DIR: the base backup read once, each chunk checked before
// it is used, and extracted by the tar reader that checks each member (baseExtract.ts); its
// backup_manifest's own checksum and WAL range checked; without a signature, the server
// settings it brings that run commands or load code refused unless --trust-unsigned; the WAL
// staged, the recovery settings written. Only a complete folder is renamed to DIR (after the
// old contents were moved aside, when asked); a failure removes the partial folder and leaves
// DIR, or its moved-aside data, as it was.
// A DIR that is a mount point (PGDATA as a Docker volume) cannot be renamed: there the partial
// folder is DIR/.pgsb-restore-<random>.partial, the old contents go to DIR/.pgsb-moved-<time>/,
// and the new ones are moved in entry by entry, a step that is not atomic (a failure in it says so).
import { appendFile, chmod, chown, mkdir, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { ExitCode, TaskError, errnoCode } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import { runCommand } from "../core/proc.js";
import { shutdown } from "../core/shutdown.js";
import type { AgeIdentity } from "../keys/ageIdentity.js";
import { backupManifestProblem } from "./baseChecks.js";
import { extractBase } from "./baseExtract.js";
import type { PitrPlan } from "./plan.js";
import { recoverySettings } from "./recoveryConf.js";
import { gateSettings } from "./settingsGate.js";
import type { TrustedBase } from "./trustedBase.js";
import { isMountPoint, moveAside, moveContentsAside, moveContentsIn } from "./dataDir.js";
import { localWalSource, stageWal } from "./walStaging.js";
import type { StagedHistory, WalSource } from "./walStaging.js";
import type { WalTrust } from "../wal/readFile.js";

export interface PitrRestoreOptions {
  backupDir: string;
  /** Where the WAL is read: BACKUP_DIR/wal unless given (the S3 mirror: lib/offsite/). */
  walSource?: WalSource;
  /** The plan's base backup, its sidecars checked (trustBase). */
  base: TrustedBase;
  dataDir: string;
  /** What is at dataDir now: "absent" and "empty" are replaced; "non-empty" is moved aside first. */
  existing: "absent" | "empty" | "non-empty";
  /** uid:gid to hand the restored files to (only as root: a job that reads BACKUP_DIR as one user and prepares postgres's files); null: the task's own user. */
  owner: { uid: number; gid: number } | null;
  /** Go on when an unsigned base backup's configuration runs commands or loads code (listed in the log). */
  trustUnsigned: boolean;
  /** AGE_IDENTITY_FILE, for an encrypted base backup. */
  identity: AgeIdentity | null;
  threads: number;
  env: NodeJS.ProcessEnv;
  log: Logger;
  now: () => Date;
  /** Test hook: awaited after each verified chunk of the base backup was handed on. */
  afterChunk?: (index: number) => Promise<void>;
  /** The plan's history files as the planning read checked and decoded them (readHistoryFiles). */
  histories: readonly StagedHistory[];
  /** The verify key and the age identity the WAL is read with (the env is `env`). */
  wal: Omit<WalTrust, "env">;
}

export interface PitrRestoreOutcome {
  dataDir: string;
  movedTo: string | null;
  rawBytes: number;
  walBytes: number;
  seconds: number;
}

async function build(plan: PitrPlan, o: PitrRestoreOptions, partial: string): Promise<{ rawBytes: number; walBytes: number }> {
  // The WAL first: a file whose signature or decryption fails refuses the restore before the base backup is extracted.
  const trust = { ...o.wal, env: o.env, systemIdentifier: plan.manifest.systemIdentifier };
  const { bytes } = await stageWal(o.walSource ?? localWalSource(o.backupDir), partial, plan.segments, o.histories, plan.manifest.walSegmentSize, trust, o.log);
  o.log.info({ backup: plan.base, into: partial }, `extracting ${plan.base}`);
  const { rawBytes, members, backupManifest, verification } = await extractBase(o.base, partial, { identity: o.identity, threads: o.threads, env: o.env, log: o.log, afterChunk: o.afterChunk });
  const problem = backupManifestProblem(backupManifest, plan.manifest);
  if (problem !== null) throw new TaskError(ExitCode.refused, `${plan.base} ${problem}: the base backup is damaged or not the one its manifest describes; use another base backup`);
  o.log.info({ backup: plan.base, rawBytes, members, verification }, `extracted ${members} files`);
  await gateSettings(plan.base, partial, { signed: o.base.signed, trustUnsigned: o.trustUnsigned, log: o.log });
  // A standby.signal would keep the cluster a standby forever; a stale pid file would stop it starting.
  await rm(join(partial, "standby.signal"), { force: true });
  await rm(join(partial, "postmaster.pid"), { force: true });
  await appendFile(join(partial, "postgresql.auto.conf"), recoverySettings(plan.target, o.now()), { mode: 0o600 });
  await writeFile(join(partial, "recovery.signal"), "", { mode: 0o600 });
  await chmod(partial, 0o700);
  if (o.owner !== null) await runCommand("chown", ["-R", "--no-dereference", `${o.owner.uid}:${o.owner.gid}`, partial], { env: o.env });
  // The rename makes the folder visible as done; its files must be on disk by then.
  await runCommand("sync", ["-f", partial], { env: o.env }).catch((err: unknown) => o.log.warn({ err: (err as Error).message }, "sync failed; relying on the rename's ordering"));
  return { rawBytes, walBytes: bytes };
}

export async function restorePitr(plan: PitrPlan, o: PitrRestoreOptions): Promise<PitrRestoreOutcome> {
  const t0 = Date.now();
  // A mount point cannot be renamed or replaced: the restore is built inside it and moved into place entry by entry.
  const mounted = o.existing !== "absent" && (await isMountPoint(o.dataDir));
  const tag = randomBytes(6).toString("hex");
  const partial = mounted ? join(o.dataDir, `.pgsb-restore-${tag}.partial`) : join(dirname(o.dataDir), `${basename(o.dataDir)}.${tag}.partial`);
  const unregister = shutdown.register(`restore-pitr partial folder ${partial}`, () => rm(partial, { recursive: true, force: true }));
  let movedTo: string | null = null;
  let swapping = false;
  try {
    try {
      await mkdir(partial, { mode: 0o700 });
    } catch (err) {
      throw new TaskError(ExitCode.storage, `cannot create ${partial} for --pgdata ${o.dataDir}: ${(err as Error).message}; ${mounted ? "the data directory" : "the folder holding the data directory"} must be writable by this task's user`, { cause: err });
    }
    const built = await build(plan, o, partial);
    if (mounted) {
      swapping = true;
      if (o.existing === "non-empty") movedTo = await moveContentsAside(o.dataDir, o.now(), basename(partial));
      await moveContentsIn(partial, o.dataDir);
      await chmod(o.dataDir, 0o700);
      if (o.owner !== null) await chown(o.dataDir, o.owner.uid, o.owner.gid);
    } else {
      if (o.existing === "non-empty") movedTo = await moveAside(o.dataDir, o.now());
      // rename(2) replaces an empty folder in one step.
      await rename(partial, o.dataDir).catch((err: unknown) => {
        if (errnoCode(err) !== "EBUSY") throw err;
        throw new TaskError(ExitCode.refused, `--pgdata ${o.dataDir} cannot be replaced (EBUSY: a bind mount?); mount the volume one level up and point --pgdata (and PGDATA) at a folder inside it`, { cause: err });
      });
    }
    if (movedTo !== null) o.log.info({ movedTo }, `moved the old contents of ${o.dataDir} aside to ${movedTo}`);
    return { dataDir: o.dataDir, movedTo, ...built, seconds: (Date.now() - t0) / 1000 };
  } catch (err) {
    await rm(partial, { recursive: true, force: true }).catch(() => undefined);
    const aside = movedTo === null ? "" : `; the old data directory is kept at ${movedTo}`;
    const state = swapping ? `${o.dataDir} holds an incomplete restore: do not start postgres on it; move the old contents back or run restore-pitr --move-aside again` : `${o.dataDir} was not restored`;
    const message = `restore-pitr failed, ${state} (the partial folder was removed${aside}): ${(err as Error).message}`;
    throw new TaskError(err instanceof TaskError ? err.exitCode : ExitCode.failed, message, { cause: err });
  } finally {
    unregister();
  }
}
