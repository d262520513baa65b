// A base manifest as `backup base` writes it (format 2: one chunk for its one byte; the
// recipients of a .age name), for tests that plan or check over base backups without taking
// real ones; the name's time fills in startedAt and finishedAt. testBaseManifestV1: as written
// before chunk lists.
import type { BaseManifest } from "../lib/physical/layout.js";
import { parseBaseName } from "../lib/physical/layout.js";

export function testBaseManifest(name: string, over: Partial<BaseManifest> = {}): BaseManifest {
  const parsed = parseBaseName(name);
  if (parsed === null) throw new Error(`bad test base backup name ${name}`);
  const at = parsed.time.toISOString();
  return {
    format: 2,
    kind: "base",
    tool: { name: "pg-swarm-backup", version: "test" },
    name,
    startedAt: at,
    finishedAt: at,
    startLsn: "0/2000028",
    stopLsn: "0/2000100",
    timeline: 1,
    walSegmentSize: 16 * 1024 * 1024,
    systemIdentifier: "7300000000000000001",
    serverVersion: "15.10",
    pgBasebackupVersion: "pg_basebackup (PostgreSQL) 15.10",
    compression: { codec: parsed.codec, program: parsed.codec, level: null },
    rawBytes: null,
    compressedBytes: 1,
    sha256: "0".repeat(64),
    chunks: { size: 8 * 1024 * 1024, sha256: ["0".repeat(64)] },
    ...(parsed.encrypted ? { encryption: { tool: "age" as const, recipients: ["age1testrecipient"] } } : {}),
    backupManifestSha256: null,
    ...over,
  };
}

export function testBaseManifestV1(name: string, over: Partial<BaseManifest> = {}): BaseManifest {
  const v1: BaseManifest = { ...testBaseManifest(name), format: 1, rawBytes: 1, backupManifestSha256: "1".repeat(64), ...over };
  delete v1.chunks;
  return v1;
}
