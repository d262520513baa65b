import { chmodSync, chownSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { SecretRef } from "../../../lib/verify/exposure.js";
import { canRead, exposedTo, taskSecrets } from "../../../lib/verify/exposure.js";
import { tempDir } from "../../helpers.js";

const self = { uid: 1000, gid: 1000 };
const other = { uid: 999, gid: 999 };
const file = (uid: number, gid: number, mode: number): SecretRef => ({ setting: `f${mode.toString(8)}`, file: { uid, gid, mode } });
const env: SecretRef = { setting: "PGPASSWORD", file: null };

describe("canRead", () => {
  it.each([
    ["a server running as this task's user reads its files", file(1000, 1000, 0o400), self, true],
    ["… and its environment (/proc/<pid>/environ)", env, self, true],
    ["another user cannot read this task's environment", env, other, false],
    ["another user reads a Docker secret's default 0444", file(0, 0, 0o444), other, true],
    ["… not a 0400 secret of root", file(0, 0, 0o400), other, false],
    ["… a 0440 secret of its group", file(0, 999, 0o440), other, true],
    ["… not a 0440 secret of another group", file(0, 0, 0o440), other, false],
    ["… its own 0600 file", file(999, 0, 0o600), other, true],
    ["… not its own 0000 file", file(999, 0, 0o000), other, false],
  ] as const)("%s: %s", (_what, secret, user, expected) => {
    expect(canRead(secret, user, self)).toBe(expected);
  });
});

describe("taskSecrets and exposedTo", () => {
  it("finds the secret files and values of the environment and every Docker secret, leaving public keys out", async () => {
    const dir = tempDir("pgsb-exposure-");
    const secrets = join(dir, "secrets");
    mkdirSync(secrets);
    for (const name of ["identity", "recipients", "verify.pem", "hook"]) writeFileSync(join(dir, name), "x");
    writeFileSync(join(secrets, "postgres_password"), "pw");
    chmodSync(join(dir, "identity"), 0o600);
    chownSync(join(dir, "identity"), 0, 0);
    const found = await taskSecrets(
      {
        AGE_IDENTITY_FILE: join(dir, "identity"),
        AGE_RECIPIENTS_FILE: join(dir, "recipients"),
        BACKUP_VERIFY_KEY_FILE: join(dir, "verify.pem"),
        HEALTHCHECK_URL_FILE: join(dir, "hook"),
        PGPASSWORD: "pw",
        PATH: "/usr/bin",
      },
      secrets,
    );
    expect(found.map((s) => s.setting).sort()).toEqual([`AGE_IDENTITY_FILE=${join(dir, "identity")}`, `HEALTHCHECK_URL_FILE=${join(dir, "hook")}`, "PGPASSWORD", `the Docker secret ${join(secrets, "postgres_password")}`].sort());
    // A server running as another user: the root-owned 0600 identity and the environment stay out of its reach.
    expect(exposedTo(found, other, { uid: 0, gid: 0 }).sort()).toEqual([`HEALTHCHECK_URL_FILE=${join(dir, "hook")}`, `the Docker secret ${join(secrets, "postgres_password")}`].sort());
  });
});
