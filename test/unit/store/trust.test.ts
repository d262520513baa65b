// readTrusted over real files: the manifest a reader acts on is the one the (signed) .sha256 covers.
import { generateKeyPairSync } from "node:crypto";
import { rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { StoredHash } from "../../../lib/store/chunks.js";
import { backupSidecars, commitFile } from "../../../lib/store/storage.js";
import { readTrusted } from "../../../lib/store/trust.js";
import { testManifest } from "../../manifests.js";
import { tempDir } from "../../helpers.js";

const NAME = "20260301_030000_full.sql.zst";
const { privateKey, publicKey } = generateKeyPairSync("ed25519");

async function commit(signed: boolean): Promise<string> {
  const dir = tempDir("pgsb-trust-");
  const data = Buffer.alloc(200_000, 7);
  const partial = join(dir, "p.partial");
  writeFileSync(partial, data);
  const h = new StoredHash(64 * 1024);
  h.update(data);
  const r = h.finish();
  const manifest = testManifest(NAME, { sha256: r.sha256, chunks: r.chunks, compressedBytes: data.length, compression: { codec: "zstd", program: "zstd", level: 3 } });
  await commitFile(partial, join(dir, NAME), backupSidecars(NAME, manifest, signed ? privateKey : null), 0o640);
  return join(dir, NAME);
}

describe("readTrusted", () => {
  it("gives the manifest and the chunk list the .sha256 covers, signed or not", async () => {
    const signed = await commit(true);
    const t = await readTrusted(signed, NAME, publicKey, true);
    expect(t).toMatchObject({ ok: true, signed: true, expect: { name: NAME, chunks: { size: 64 * 1024 } } });
    expect(await readTrusted(signed, NAME, null, true)).toMatchObject({ ok: true, signed: false });
  });

  it.each([
    ["the signature missing, with a verify key", async (p: string) => rmSync(`${p}.sha256.sig`), true, /signature .* is missing/, true],
    ["the manifest changed", async (p: string) => writeFileSync(`${p}.json`, "{}"), false, /manifest .*\.json was changed after the backup/, true],
    ["the manifest a symlink", async (p: string) => (rmSync(`${p}.json`), symlinkSync("/etc/passwd", `${p}.json`)), false, /it is a symlink and was not read/, false],
    ["no .sha256", async (p: string) => rmSync(`${p}.sha256`), false, /no checksum file/, false],
  ])("refuses with %s", async (_what, damage, withKey, problem, untrusted) => {
    const path = await commit(true);
    await damage(path);
    expect(await readTrusted(path, NAME, withKey ? publicKey : null, true)).toEqual({ ok: false, problem: expect.stringMatching(problem), untrusted });
  });
});
