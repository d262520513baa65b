// Recipients and identities as AGE_RECIPIENTS_FILE and AGE_IDENTITY_FILE hold them; keys are
// made by the real age-keygen and ssh-keygen, so the derivation is checked against age's own.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseIdentity, readIdentityFile, sshIdentityRecipient } from "../../../lib/keys/ageIdentity.js";
import { parseRecipients, readRecipientsFile, recipientProblem } from "../../../lib/keys/ageRecipients.js";
import { ConfigError } from "../../../lib/core/errors.js";
import { tempDir } from "../../helpers.js";

const dir = tempDir("pgsb-agekeys-");
const ID = join(dir, "id.txt");
execFileSync("age-keygen", ["-o", ID], { stdio: "ignore" });
const PUB = execFileSync("age-keygen", ["-y", ID]).toString().trim();
const SSH = join(dir, "ssh");
execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "ops@example", "-f", SSH]);
const SSH_PUB = readFileSync(`${SSH}.pub`, "utf8").trim();
const SSH_KEY = SSH_PUB.split(" ").slice(0, 2).join(" ");
const SECRET = readFileSync(ID, "utf8").split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1")) as string;

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("no ConfigError");
}

describe("recipientProblem", () => {
  it.each([
    [PUB, null],
    [SSH_PUB, null],
    [`${PUB.slice(0, -1)}${PUB.endsWith("q") ? "p" : "q"}`, "checksum fails"],
    ["age1yubikey1qwt50d05nh5vutpdzmlg5wn80xq5negm4uj9ghv0snvdd3yysf5yw3rhl3t", 'age plugin "yubikey"'],
    [SECRET, "is a private identity"],
    ["ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ", "not a complete ssh-ed25519 public key"],
    ["ecdsa-sha2-nistp256 AAAA", "neither an age1 public key nor"],
  ])("%s -> %s", (line, problem) => {
    const got = recipientProblem(line);
    if (problem === null) expect(got).toBeNull();
    else expect(got).toContain(problem);
  });
});

describe("parseRecipients", () => {
  it("takes age and SSH keys, skips comments and blank lines, drops SSH comments and duplicates", () => {
    expect(parseRecipients(`# ops team\n\n${PUB}\n  ${SSH_PUB}  \n${PUB}\r\n`, "r.txt")).toEqual([PUB, SSH_KEY]);
  });

  it("names the variable, the file and the line; never quotes a private key", () => {
    expect(configError(() => parseRecipients(`${PUB}\nage1nope\n`, "/run/configs/rec"))).toMatch(/^AGE_RECIPIENTS_FILE=\/run\/configs\/rec line 2: "age1nope" is not a valid age1 public key/);
    const msg = configError(() => parseRecipients(`# keys\n${SECRET}\n`, "r.txt"));
    expect(msg).toContain("line 2:");
    expect(msg).not.toContain(SECRET.slice(16, 30));
    expect(configError(() => parseRecipients("# nothing\n", "r.txt"))).toContain("holds no recipient");
  });

  it("reads the file, and says so when it cannot", () => {
    const path = join(dir, "recipients.txt");
    writeFileSync(path, `${PUB}\n`);
    expect(readRecipientsFile(path)).toEqual([PUB]);
    expect(configError(() => readRecipientsFile(join(dir, "missing.txt")))).toContain("is not readable (ENOENT)");
  });
});

describe("identities", () => {
  it("derives the public key age-keygen -y prints, and SSH's public key from an OpenSSH private key", () => {
    expect(readIdentityFile(ID)).toEqual({ file: ID, recipients: [PUB] });
    expect(readIdentityFile(SSH)).toEqual({ file: SSH, recipients: [SSH_KEY] });
  });

  it("refuses a public key, a damaged line and a passphrase-protected SSH key, never quoting the file", () => {
    const damaged = `${SECRET.slice(0, -1)}${SECRET.endsWith("Q") ? "P" : "Q"}`;
    for (const [text, problem] of [
      [`${PUB}\n`, "line 1 is a public key, not an identity"],
      [`# created: today\n${damaged}\n`, "line 2 is not an age identity"],
      ["# only comments\n", "holds no identity"],
    ] as const) {
      const msg = configError(() => parseIdentity(text, "/run/secrets/age_identity"));
      expect(msg).toContain(`AGE_IDENTITY_FILE=/run/secrets/age_identity ${problem}`);
      expect(msg).not.toContain(SECRET.slice(16, 30));
    }
    const locked = join(dir, "locked");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "a passphrase", "-f", locked]);
    expect(sshIdentityRecipient(readFileSync(locked, "utf8"))).toEqual({ problem: expect.stringContaining("passphrase-protected") as unknown });
  });
});
