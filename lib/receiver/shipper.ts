// Shipping WAL from wal-receive's private spool (archiveMode.ts) into BACKUP_DIR/wal: each
// file is read once from the spool into memory, encrypted with age to AGE_RECIPIENTS_FILE's
// public keys when set, written atomically (random temp name, O_EXCL|O_NOFOLLOW, fsync,
// rename), and signed when BACKUP_SIGNING_KEY_FILE is set — over exactly the bytes written,
// read from a folder no one else can write. Order per round: history files, then completed
// segments oldest first (the only WAL a dying task can lose is a completed segment not yet
// shipped: the slot keeps the server's WAL from the current segment on, so a receiver that
// starts again re-streams that one), then a snapshot of each segment still being received,
// refreshed whenever it grew, so the recovery point stays a status interval old. Once a
// segment has shipped complete, its snapshots in wal/ are removed; the spool keeps only the
// newest complete segment, which tells pg_receivewal where to resume.
import type { KeyObject } from "node:crypto";
import { constants } from "node:fs";
import { open, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../core/atomicWrite.js";
import { errnoCode } from "../core/errors.js";
import { readWholeFile } from "../core/noFollow.js";
import type { Logger } from "../core/log.js";
import { WAL_ENCRYPTED_SUFFIX, WAL_SIGNATURE_SUFFIX, parseWalName, walStem } from "../physical/layout.js";
import type { WalFile } from "../physical/layout.js";
import { encryptWal } from "../wal/encryption.js";
import { signWalStatement, walStatement } from "../wal/signature.js";
import { isResumePoint } from "./resumePoint.js";

export interface ShipperOptions {
  /** pg_receivewal's folder. */
  spool: string;
  /** BACKUP_DIR/wal. */
  archive: string;
  recipients: readonly string[] | null;
  signingKey: KeyObject | null;
  fileMode: number;
  env: NodeJS.ProcessEnv;
  log: Logger;
}

export interface ShipRound {
  /** Completed segments and history files shipped, as stored in wal/. */
  shipped: string[];
  /** Snapshots refreshed, as stored in wal/. */
  snapshots: string[];
}

const PARTIAL_NAMES = [".partial", ".gz.partial", ".lz4.partial"].flatMap((s) => [s, s + WAL_ENCRYPTED_SUFFIX]);
const TEMP_RE = /^[0-9A-F.a-z]+\.[0-9a-f]{16}\.tmp$/;

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class WalShipper {
  /** No file of the spool is larger: twice the cluster's wal_segment_size, set with the identifier. */
  maxBytes = 2 * (16 << 20);
  readonly #o: ShipperOptions;
  /** Completed segments this process has shipped (the newest stays in the spool). */
  readonly #shipped = new Set<string>();
  /** Snapshot state per .partial in the spool: "size:mtime" when last shipped. */
  readonly #snapshots = new Map<string, string>();

  constructor(o: ShipperOptions) {
    this.#o = o;
  }

  /** Removes temp files of writes a killed wal-receive left in wal/ (only one receiver runs per slot). */
  async removeStaleTemps(): Promise<void> {
    const names = await readdir(this.#o.archive).catch(() => [] as string[]);
    for (const n of names.filter((x) => TEMP_RE.test(x) && parseWalName(x.replace(/\.[0-9a-f]{16}\.tmp$/, "").replace(/\.sig$/, "")) !== null)) {
      await rm(join(this.#o.archive, n), { force: true });
    }
  }

  /** Forgets what this process shipped: the spool's files were set aside (identity.ts), and new ones may take their names. */
  forget(): void {
    this.#shipped.clear();
    this.#snapshots.clear();
  }

  /**
   * One round. `cluster`: the system identifier of the cluster the spool's WAL is of, which the
   * signatures name; null while it is not known (archiver.ts beforeStart), and then nothing is
   * shipped: WAL is never signed as another cluster's, nor shipped while the spool may be set
   * aside. `inShutdown`: the last round, run by the SIGTERM releaser (see proc.ts).
   */
  async ship(cluster: string | null, inShutdown = false): Promise<ShipRound> {
    if (cluster === null) return { shipped: [], snapshots: [] };
    const o = this.#o;
    const files = (await readdir(o.spool, { withFileTypes: true })).filter((d) => d.isFile()).flatMap((d) => parseWalName(d.name) ?? []);
    const histories = files.filter((f) => f.kind === "history");
    const segments = files.filter((f): f is Extract<WalFile, { kind: "segment" }> => f.kind === "segment" && !f.encrypted);
    segments.sort((a, b) => a.timeline - b.timeline || (a.segment < b.segment ? -1 : a.segment > b.segment ? 1 : 0));
    const complete = segments.filter((s) => !s.partial);
    const round: ShipRound = { shipped: [], snapshots: [] };
    for (const h of histories) {
      const bytes = await this.#read(h.name);
      if (bytes === null) continue;
      round.shipped.push(await this.#store(h.name, bytes, cluster, inShutdown));
      // pg_receivewal fetches a history file again when it needs it.
      await rm(join(o.spool, h.name), { force: true });
    }
    for (const s of complete) {
      if (this.#shipped.has(s.name)) continue;
      const bytes = await this.#read(s.name);
      if (bytes === null) continue;
      // pg_receivewal's resume point after a fork (resumePoint.ts) is no WAL: it stays in the spool, unshipped.
      if (await isResumePoint(bytes, s.compression)) {
        this.#shipped.add(s.name);
        continue;
      }
      round.shipped.push(await this.#store(s.name, bytes, cluster, inShutdown));
      this.#shipped.add(s.name);
      for (const p of PARTIAL_NAMES) {
        for (const n of [walStem(s) + p, walStem(s) + p + WAL_SIGNATURE_SUFFIX]) await rm(join(o.archive, n), { force: true });
      }
    }
    for (const s of complete.slice(0, -1)) {
      await rm(join(o.spool, s.name), { force: true });
      this.#shipped.delete(s.name);
    }
    for (const s of segments.filter((x) => x.partial)) {
      const st = await stat(join(o.spool, s.name)).catch(() => null);
      const state = st === null ? null : `${st.size}:${st.mtimeMs}`;
      if (st === null || st.size === 0 || this.#snapshots.get(s.name) === state) continue;
      // A segment completing meanwhile is renamed away: shipped complete in the next round.
      const bytes = await this.#read(s.name);
      if (bytes === null) continue;
      round.snapshots.push(await this.#store(s.name, bytes, cluster, inShutdown));
      this.#snapshots.set(s.name, state as string);
    }
    for (const name of this.#snapshots.keys()) if (!segments.some((s) => s.name === name)) this.#snapshots.delete(name);
    if (round.shipped.length + round.snapshots.length > 0) await fsyncDir(o.archive);
    for (const name of round.shipped) o.log.info({ event: "ship", file: name }, `shipped ${name} to ${o.archive}`);
    if (round.snapshots.length > 0) o.log.debug({ event: "snapshot", files: round.snapshots }, "refreshed the snapshot of the segment being received");
    return round;
  }

  /** A spool file's bytes; null when it is gone (renamed on completion, or fetched again). */
  async #read(name: string): Promise<Buffer | null> {
    return readWholeFile(join(this.#o.spool, name), this.maxBytes).catch((err: unknown) => {
      if (errnoCode(err) === "ENOENT") return null;
      throw err;
    });
  }

  /** Writes one file into wal/ (encrypted, then signed, as configured); returns its stored name. */
  async #store(name: string, bytes: Buffer, cluster: string, inShutdown: boolean): Promise<string> {
    const o = this.#o;
    const stored = o.recipients === null ? name : name + WAL_ENCRYPTED_SUFFIX;
    const data = o.recipients === null ? bytes : await encryptWal(bytes, o.recipients, o.env, inShutdown);
    await writeFileAtomic(join(o.archive, stored), data, o.fileMode);
    if (o.signingKey !== null) {
      await writeFileAtomic(join(o.archive, stored + WAL_SIGNATURE_SUFFIX), signWalStatement(walStatement(stored, data, cluster), o.signingKey), o.fileMode);
    }
    return stored;
  }
}
