// Base backups as a share writer would plant them: a tar (real or rewritten) stored under a base
// backup's name with a manifest, .sha256 and, given the key, a .sig, exactly as `backup base`
// writes them (format 2, chunk hashes), so only what is inside the tar differs.
import type { KeyObject } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BaseManifest } from "../lib/physical/layout.js";
import { StoredHash } from "../lib/store/chunks.js";
import { backupSidecars } from "../lib/store/storage.js";

/** Writes `bytes` as base/NAME in `backupDir` with sidecars made from `manifest` (its name kept, its hashes and size replaced). */
export function storeBase(backupDir: string, manifest: BaseManifest, bytes: Buffer, signingKey: KeyObject | null): BaseManifest {
  const dir = join(backupDir, "base");
  mkdirSync(dir, { recursive: true });
  const h = new StoredHash();
  h.update(bytes);
  const { sha256, chunks } = h.finish();
  const m: BaseManifest = { ...manifest, sha256, chunks, compressedBytes: bytes.length };
  const path = join(dir, m.name);
  writeFileSync(path, bytes);
  const side = backupSidecars(m.name, m, signingKey);
  writeFileSync(`${path}.json`, side.manifest);
  writeFileSync(`${path}.sha256`, side.checksum);
  if (side.signature !== null) writeFileSync(`${path}.sha256.sig`, side.signature);
  return m;
}
