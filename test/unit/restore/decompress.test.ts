// openSqlStream over real files and the real filter programs: every combination of codec and
// encryption yields the SQL from a read verified chunk by chunk; a changed byte stops it with
// the chunk named before age or the decompressor see it; a wrong identity rejects `done` with
// age's error (the upstream one, not the decompressor's).
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { text } from "node:stream/consumers";
import { describe, expect, it } from "vitest";
import { readIdentityFile } from "../../../lib/keys/ageIdentity.js";
import type { Codec } from "../../../lib/core/codec.js";
import { ProcessError } from "../../../lib/core/proc.js";
import { openSqlStream } from "../../../lib/restore/decompress.js";
import type { SqlSource } from "../../../lib/restore/decompress.js";
import { StoredHash } from "../../../lib/store/chunks.js";
import { IntegrityError } from "../../../lib/store/verifiedRead.js";
import { tempDir } from "../../helpers.js";

const dir = tempDir("pgsb-decompress-");
const SQL = "SELECT 1;\n".repeat(50_000);
execFileSync("age-keygen", ["-o", join(dir, "id.txt")], { stdio: "ignore" });
execFileSync("age-keygen", ["-o", join(dir, "other.txt")], { stdio: "ignore" });
const recipient = execFileSync("age-keygen", ["-y", join(dir, "id.txt")]).toString().trim();
const env = { PATH: process.env.PATH };
const COMPRESS: Record<Codec, string> = { none: "cat", bzip2: "bzip2 -c", zstd: "zstd -q -c", gzip: "gzip -c" };

function write(codec: Codec, encrypted: boolean): string {
  const path = join(dir, `${codec}${encrypted ? ".age" : ""}`);
  writeFileSync(join(dir, "plain.sql"), SQL);
  execFileSync("sh", ["-c", `${COMPRESS[codec]} < plain.sql ${encrypted ? `| age -e -r ${recipient}` : ""} > "$1"`, "sh", path], { cwd: dir });
  return path;
}

/** The source of a file as written, with its chunk list (64 KiB chunks, so the small files have several). */
function source(path: string, codec: Codec, encrypted: boolean): SqlSource {
  const h = new StoredHash(64 * 1024);
  h.update(readFileSync(path));
  const r = h.finish();
  return { name: "f", path, codec, encrypted, expect: { name: "f", chunks: r.chunks, sha256: r.sha256 } };
}

describe("openSqlStream", () => {
  it.each((["none", "bzip2", "zstd", "gzip"] as const).flatMap((codec) => [false, true].map((encrypted) => [codec, encrypted] as const)))(
    "%s, encrypted %s: the SQL, read once, verified chunk by chunk",
    async (codec, encrypted) => {
      const path = write(codec, encrypted);
      const sql = openSqlStream(source(path, codec, encrypted), { threads: 2, env, identity: readIdentityFile(join(dir, "id.txt")) });
      expect(await text(sql.stream)).toBe(SQL);
      await sql.done;
      expect(sql.verification).toBe("chunks");
      expect(sql.bytesRead()).toBe(readFileSync(path).length);
    },
  );

  it.each(["none", "zstd"] as const)("%s: a byte changed in the last chunk fails the read with the chunk named, the stage that explains it", async (codec) => {
    const path = write(codec, true);
    const src = source(path, codec, true);
    const bytes = readFileSync(path);
    bytes.writeUInt8((bytes.readUInt8(bytes.length - 2) ^ 1) & 0xff, bytes.length - 2);
    writeFileSync(path, bytes);
    const sql = openSqlStream(src, { threads: 2, env, identity: readIdentityFile(join(dir, "id.txt")) });
    await text(sql.stream).catch(() => "");
    const err = await sql.done.then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as IntegrityError).chunk).toBe(src.expect.chunks?.sha256.length);
    expect(await sql.cause).toBeInstanceOf(IntegrityError);
  });

  it("with the wrong identity, done rejects with age's error", async () => {
    const path = write("zstd", true);
    const sql = openSqlStream(source(path, "zstd", true), { threads: 2, env, identity: readIdentityFile(join(dir, "other.txt")) });
    await text(sql.stream);
    const err = await sql.done.then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ProcessError);
    expect((err as ProcessError).program).toBe("age");
    expect((err as ProcessError).stderrTail).toContain("no identity matched");
  });

  it("after the reader gave up on a broken stream, cause still names age's refusal, also after cancel()", async () => {
    for (const codec of ["zstd", "none"] as const) {
      const path = write(codec, true);
      const sql = openSqlStream(source(path, codec, true), { threads: 2, env, identity: readIdentityFile(join(dir, "other.txt")) });
      // As a reader does: it meets the stream's early end (or "Premature close"), then cancels.
      await text(sql.stream).catch(() => "");
      sql.cancel();
      const cause = await sql.cause;
      expect(cause, codec).toBeInstanceOf(ProcessError);
      expect((cause as ProcessError).stderrTail).toContain("no identity matched");
      await sql.done;
    }
  });

  it("a reader that stops early on a sound file: no cause", async () => {
    const path = write("zstd", true);
    const sql = openSqlStream(source(path, "zstd", true), { threads: 2, env, identity: readIdentityFile(join(dir, "id.txt")) });
    sql.cancel();
    expect(await sql.cause).toBeNull();
  });

  it("without an identity, an encrypted file is refused before anything runs (exit 4)", () => {
    expect(() => openSqlStream({ name: "x.sql.age", path: "/nonexistent", codec: "none", encrypted: true, expect: { name: "x.sql.age", chunks: null, sha256: null } }, { threads: 1, env, identity: null })).toThrow(/x\.sql\.age is encrypted; set AGE_IDENTITY_FILE/);
  });
});
