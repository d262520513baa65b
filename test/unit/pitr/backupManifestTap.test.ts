import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { BackupManifestTap } from "../../../lib/pitr/backupManifestTap.js";

/** A backup_manifest as pg_basebackup writes it: its Manifest-Checksum covers every byte before that line. */
function manifest(files: number): Buffer {
  const lines = Array.from({ length: files }, (_, i) => `{ "Path": "base/1/${10000 + i}", "Size": 8192, "Last-Modified": "2024-01-10 02:00:00 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "0badf00d" },`);
  const body = `{ "PostgreSQL-Backup-Manifest-Version": 1,\n"Files": [\n${lines.join("\n")}\n],\n"WAL-Ranges": [\n{ "Timeline": 2, "Start-LSN": "0/5000028", "End-LSN": "0/5000138" }\n],\n`;
  return Buffer.from(`${body}"Manifest-Checksum": "${createHash("sha256").update(body).digest("hex")}"}\n`);
}

function seen(data: Buffer, piece = 4093) {
  const tap = new BackupManifestTap();
  for (let at = 0; at < data.length; at += piece) tap.update(data.subarray(at, at + piece));
  return tap.finish();
}

describe("BackupManifestTap", () => {
  it.each([["a small manifest", 3], ["one larger than the 64 KiB it holds back", 2000]])("%s: its sha256, its own checksum and its WAL range", (_what, files) => {
    const data = manifest(files);
    expect(seen(data)).toEqual({ sha256: createHash("sha256").update(data).digest("hex"), bytes: data.length, checksumOk: true, range: { timeline: 2, startLsn: "0/5000028", stopLsn: "0/5000138" } });
  });

  it.each([
    ["a byte changed far before the tail", (b: Buffer) => (b[100] = 0x41)],
    ["a byte changed in the tail", (b: Buffer) => (b[b.length - 150] = 0x41)],
    ["the checksum line cut off", (b: Buffer) => b.fill(0x20, b.length - 40)],
  ])("%s: the checksum does not match", (_what, change) => {
    const data = Buffer.from(manifest(2000));
    change(data);
    expect(seen(data).checksumOk).toBe(false);
  });
});
