import { describe, expect, it } from "vitest";
import { decryptorFor, encryptorFor, identityProblem, isIdentityMismatch } from "../../../lib/backup/encryption.js";
import { ConfigError } from "../../../lib/core/errors.js";
import { ProcessError } from "../../../lib/core/proc.js";

const A = "age1glz0y505xgndl9ef9wgd3arzg8h9chrwyagtyt7rszy6cdqy3q4szq33d0";
const B = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";
const id = (...recipients: string[]) => ({ file: "/run/secrets/age_identity", recipients });

describe("identityProblem", () => {
  it.each<[string, string[] | null, ReturnType<typeof id> | null, RegExp | null]>([
    ["the identity holds a recipient's key", [A, B], id(B), null],
    ["recipients unknown (no manifest): age decides", null, id(B), null],
    ["no identity", [A], null, /^x\.sql\.age is encrypted to age1glz0y505xgnd…zq33d0; set AGE_IDENTITY_FILE/],
    ["no identity, recipients unknown", null, null, /^x\.sql\.age is encrypted; set AGE_IDENTITY_FILE/],
    ["another key", [A], id(B), /AGE_IDENTITY_FILE=\/run\/secrets\/age_identity holds the key of age1zvkyg2lqzraa…unujwj, not one of them/],
  ])("%s", (_what, recipients, identity, expected) => {
    const got = identityProblem("x.sql.age", recipients, identity);
    if (expected === null) expect(got).toBeNull();
    else expect(got).toMatch(expected);
  });
});

describe("the age programs", () => {
  const env = { PATH: process.env.PATH };

  it("encrypt to public keys on argv, decrypt with the identity's path (never its content)", () => {
    expect(encryptorFor([A, "ssh-ed25519 AAAAC3"], env)).toEqual({ program: "age", args: ["-e", "-r", A, "-r", "ssh-ed25519 AAAAC3"], label: "age -e (2 recipients)" });
    expect(decryptorFor(id(A), env).args).toEqual(["-d", "-i", "/run/secrets/age_identity"]);
  });

  it("without age on PATH: exit 2 naming the variable and the package", () => {
    expect(() => encryptorFor([A], { PATH: "/nonexistent" })).toThrow(ConfigError);
    expect(() => decryptorFor(id(A), { PATH: "/nonexistent" })).toThrow(/AGE_IDENTITY_FILE is set but the age program is not on PATH; install it \(Debian and Alpine package "age"\)/);
  });

  it("tells an identity that does not fit from a damaged file by age's own words", () => {
    expect(isIdentityMismatch(new ProcessError("age", 1, undefined, "age: error: no identity matched any of the recipients"))).toBe(true);
    expect(isIdentityMismatch(new ProcessError("age", 1, undefined, "age: error: failed to decrypt and authenticate payload chunk"))).toBe(false);
    expect(isIdentityMismatch(new ProcessError("zstd", 1, undefined, "no identity matched"))).toBe(false);
  });
});
