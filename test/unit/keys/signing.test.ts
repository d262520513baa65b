// BACKUP_SIGNING_KEY_FILE / BACKUP_VERIFY_KEY_FILE, read by resolveConfig from key files made
// the way docs/security.md tells operators to make them (openssl), and every wrong file refused
// with exit 2 naming the variable, the problem and the fix.
import { execFileSync } from "node:child_process";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { inspect } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { resolveConfig } from "../../../lib/config/config.js";
import { ConfigError, ExitCode } from "../../../lib/core/errors.js";
import { tempDir } from "../../helpers.js";

const dir = tempDir("pgsb-keys-");
const f = (name: string) => join(dir, name);
const base = { BACKUP_DIR: "/backups" };

beforeAll(() => {
  const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });
  openssl("genpkey", "-algorithm", "ed25519", "-out", f("sign.pem"));
  openssl("pkey", "-in", f("sign.pem"), "-pubout", "-out", f("verify.pem"));
  openssl("genpkey", "-algorithm", "ed25519", "-out", f("other.pem"));
  openssl("pkey", "-in", f("other.pem"), "-pubout", "-out", f("other-verify.pem"));
  openssl("genpkey", "-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:1024", "-out", f("rsa.pem"));
  openssl("pkey", "-in", f("rsa.pem"), "-pubout", "-out", f("rsa-pub.pem"));
  openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f("ec.pem"));
  openssl("pkey", "-in", f("ec.pem"), "-pubout", "-out", f("ec-pub.pem"));
  openssl("pkey", "-in", f("sign.pem"), "-aes256", "-passout", "pass:secret", "-out", f("encrypted.pem"));
  writeFileSync(f("garbage.pem"), "not a key\n");
  writeFileSync(f("empty.pem"), "");
  writeFileSync(f("unreadable.pem"), "x");
  chmodSync(f("unreadable.pem"), 0o000);
});

describe("signing keys in resolveConfig", () => {
  it("is off without the variables (and with them empty)", () => {
    expect(resolveConfig(base).signing).toEqual({ key: null, keyFile: null, verifyKey: null, verifyKeyFile: null });
    expect(resolveConfig({ ...base, BACKUP_SIGNING_KEY_FILE: "", BACKUP_VERIFY_KEY_FILE: "" }).signing.key).toBeNull();
  });

  it("reads the openssl-made pair, and never renders the private key", () => {
    const c = resolveConfig({ ...base, BACKUP_SIGNING_KEY_FILE: f("sign.pem"), BACKUP_VERIFY_KEY_FILE: f("verify.pem") });
    expect(c.signing.key?.asymmetricKeyType).toBe("ed25519");
    expect(c.signing.key?.type).toBe("private");
    expect(c.signing.verifyKey?.type).toBe("public");
    const pem = execFileSync("openssl", ["pkey", "-in", f("sign.pem"), "-outform", "DER"]).toString("base64");
    for (const shown of [inspect(c, { depth: 10 }), JSON.stringify(c)]) expect(shown).not.toContain(pem.slice(-20));
  });

  it.each([
    ["BACKUP_SIGNING_KEY_FILE", "missing.pem", /BACKUP_SIGNING_KEY_FILE=\S+missing\.pem is not readable \(ENOENT\); mount the backup_signing_key secret/],
    ["BACKUP_SIGNING_KEY_FILE", "garbage.pem", /BACKUP_SIGNING_KEY_FILE=\S+ is not a PEM private key; make a pair with `openssl genpkey -algorithm ed25519/],
    ["BACKUP_SIGNING_KEY_FILE", "empty.pem", /BACKUP_SIGNING_KEY_FILE=\S+ is not a PEM private key/],
    ["BACKUP_SIGNING_KEY_FILE", "verify.pem", /BACKUP_SIGNING_KEY_FILE=\S+ is not a PEM private key/],
    ["BACKUP_SIGNING_KEY_FILE", "rsa.pem", /BACKUP_SIGNING_KEY_FILE=\S+ holds a private key of type rsa, not an Ed25519 key; make a pair/],
    ["BACKUP_SIGNING_KEY_FILE", "ec.pem", /BACKUP_SIGNING_KEY_FILE=\S+ holds a private key of type ec, not an Ed25519 key/],
    ["BACKUP_SIGNING_KEY_FILE", "encrypted.pem", /BACKUP_SIGNING_KEY_FILE=\S+ is passphrase-protected; store it unencrypted/],
    ["BACKUP_VERIFY_KEY_FILE", "missing.pem", /BACKUP_VERIFY_KEY_FILE=\S+ is not readable \(ENOENT\); mount the backup_verify_key secret/],
    ["BACKUP_VERIFY_KEY_FILE", "garbage.pem", /BACKUP_VERIFY_KEY_FILE=\S+ is not a PEM public key; make a pair/],
    ["BACKUP_VERIFY_KEY_FILE", "rsa-pub.pem", /BACKUP_VERIFY_KEY_FILE=\S+ holds a public key of type rsa, not an Ed25519 key/],
    ["BACKUP_VERIFY_KEY_FILE", "ec-pub.pem", /BACKUP_VERIFY_KEY_FILE=\S+ holds a public key of type ec, not an Ed25519 key/],
    ["BACKUP_VERIFY_KEY_FILE", "sign.pem", /BACKUP_VERIFY_KEY_FILE=\S+ holds a private key; give the verifying services only the public key: `openssl pkey -in sign.pem -pubout -out verify.pem`/],
    ["BACKUP_VERIFY_KEY_FILE", "encrypted.pem", /BACKUP_VERIFY_KEY_FILE=\S+ holds a private key/],
  ])("%s=%s is refused with exit 2", (name, file, message) => {
    let err: unknown;
    try {
      resolveConfig({ ...base, [name]: f(file) });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).exitCode).toBe(ExitCode.usage);
    expect((err as Error).message).toMatch(message);
  });

  it.runIf(process.getuid?.() !== 0)("names EACCES for an unreadable key file", () => {
    expect(() => resolveConfig({ ...base, BACKUP_VERIFY_KEY_FILE: f("unreadable.pem") })).toThrow(/is not readable \(EACCES\)/);
  });

  it("refuses a signing key and a verify key that are not a pair", () => {
    expect(() => resolveConfig({ ...base, BACKUP_SIGNING_KEY_FILE: f("sign.pem"), BACKUP_VERIFY_KEY_FILE: f("other-verify.pem") })).toThrow(
      /BACKUP_SIGNING_KEY_FILE=\S+ and BACKUP_VERIFY_KEY_FILE=\S+ are not a pair/,
    );
  });
});
