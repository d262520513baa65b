// The backup_manifest member as the tar reader writes it: its sha256 (compared with a format-1
// manifest's backupManifestSha256), its own Manifest-Checksum (the sha256 of everything before
// that line, which pg_verifybackup checks too), and the WAL-Ranges at its end, which must be the
// range the .json records (restore-pitr stages WAL by that range). Only the last 64 KiB are
// held; the rest is hashed as it passes.
import { createHash } from "node:crypto";
import type { Hash } from "node:crypto";
import type { WalRange } from "../base/backup.js";
import { MANIFEST_TAIL_BYTES, walRangeOf } from "../base/backup.js";

export interface BackupManifestSeen {
  sha256: string;
  bytes: number;
  /** Whether its Manifest-Checksum line is there and matches what precedes it. */
  checksumOk: boolean;
  range: WalRange | null;
}

const CHECKSUM_LINE = /"Manifest-Checksum": "([0-9a-f]{64})"\}\s*$/;

export class BackupManifestTap {
  private readonly whole: Hash = createHash("sha256");
  /** Everything but the held tail: the part the Manifest-Checksum covers, unless the tail holds that line's start. */
  private readonly body: Hash = createHash("sha256");
  private tail: Buffer = Buffer.alloc(0);
  private bytes = 0;

  update(data: Buffer): void {
    this.whole.update(data);
    this.bytes += data.length;
    const joined = Buffer.concat([this.tail, data]);
    const spill = joined.length - MANIFEST_TAIL_BYTES;
    if (spill > 0) this.body.update(joined.subarray(0, spill));
    this.tail = spill > 0 ? Buffer.from(joined.subarray(spill)) : joined;
  }

  finish(): BackupManifestSeen {
    const text = this.tail.toString("latin1");
    const at = text.lastIndexOf('"Manifest-Checksum"');
    const recorded = at === -1 ? null : CHECKSUM_LINE.exec(text.slice(at));
    let checksumOk = false;
    if (recorded !== null) {
      this.body.update(this.tail.subarray(0, at));
      checksumOk = this.body.digest("hex") === recorded[1];
    }
    return { sha256: this.whole.digest("hex"), bytes: this.bytes, checksumOk, range: walRangeOf(this.tail) };
  }
}
