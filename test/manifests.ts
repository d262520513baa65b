// A manifest as the backup task writes it, for tests that plan or check over a catalog
// without writing real backups; the name's tier and time fill in tier, startedAt, finishedAt.
import type { Manifest } from "../lib/store/manifest.js";
import { MANIFEST_FORMAT } from "../lib/store/manifest.js";
import { parseBackupName } from "../lib/store/naming.js";

export function testManifest(name: string, over: Partial<Manifest> = {}): Manifest {
  const parsed = parseBackupName(name);
  if (parsed === null) throw new Error(`bad test backup name ${name}`);
  const at = parsed.time.toISOString();
  return {
    format: MANIFEST_FORMAT,
    tool: { name: "pg-swarm-backup", version: "test" },
    name,
    tier: parsed.tier,
    parent: null,
    startedAt: at,
    finishedAt: at,
    serverVersion: "16.10",
    pgDumpVersion: "16.10",
    systemIdentifier: "7300000000000000001",
    compression: { codec: "bzip2", program: "lbzip2", level: 9 },
    rawBytes: 1,
    compressedBytes: 1,
    sha256: "0".repeat(64),
    fingerprint: { globals: "g", statsEpoch: "s", databases: {} },
    databases: [],
    included: [],
    rowCounts: {},
    ...over,
  };
}
