// The age CLI as one more filter in the pipeline: after the compressor when a backup is
// written, before the decompressor when it is read. Chosen over the age-encryption npm
// library by measurement (docs/security.md "Encryption at rest"): the Go binary encrypts at ~950 MB/s
// in 5 MB on its own core, the library at ~95 MB/s in 270 MB on Node's.
import { which } from "../core/bin.js";
import { ConfigError, ExitCode, TaskError } from "../core/errors.js";
import type { Program } from "../core/proc.js";
import { ProcessError, runCommand } from "../core/proc.js";
import type { AgeIdentity } from "../keys/ageIdentity.js";
import type { Manifest, ManifestEncryption } from "../store/manifest.js";
import { rowCountsProblem } from "../store/manifestSchema.js";
import { MANIFEST_SUFFIX } from "../store/naming.js";
import { filterEnv } from "./compression.js";

function requireAge(env: NodeJS.ProcessEnv, variable: string): void {
  if (which("age", env) === null) throw new ConfigError(`${variable} is set but the age program is not on PATH; install it (Debian and Alpine package "age") or unset ${variable}`);
}

/** age encrypting to `recipients` (public keys only ever reach argv). */
export function encryptorFor(recipients: readonly string[], env: NodeJS.ProcessEnv): Program {
  requireAge(env, "AGE_RECIPIENTS_FILE");
  const args = ["-e", ...recipients.flatMap((r) => ["-r", r])];
  return { program: "age", args, label: `age -e (${recipients.length} recipient${recipients.length === 1 ? "" : "s"})` };
}

/** age decrypting with the identity file (its path reaches argv, its content never does). */
export function decryptorFor(identity: AgeIdentity, env: NodeJS.ProcessEnv): Program {
  requireAge(env, "AGE_IDENTITY_FILE");
  return { program: "age", args: ["-d", "-i", identity.file], label: "age -d" };
}

/** age's own words for "none of the identities opens this file's header". */
const NO_MATCH = /no identity matched/i;

/** Whether an age failure says the identity does not fit (rather than a damaged file). */
export function isIdentityMismatch(err: unknown): boolean {
  return err instanceof ProcessError && err.program === "age" && NO_MATCH.test(err.stderrTail);
}

function shortKey(key: string): string {
  return key.length > 24 ? `${key.slice(0, 16)}…${key.slice(-6)}` : key;
}

/**
 * Why `identity` cannot open a backup encrypted to `recipients`, or null when it holds one of
 * their keys (or the recipients are not known). Pure: decided from the manifest, before age runs.
 */
export function identityProblem(name: string, recipients: readonly string[] | null, identity: AgeIdentity | null): string | null {
  const to = recipients === null ? "" : ` to ${recipients.map(shortKey).join(", ")}`;
  if (identity === null) {
    return `${name} is encrypted${to}; set AGE_IDENTITY_FILE to the identity (private key) of one of its recipients (on Swarm, the age_identity secret)`;
  }
  if (recipients === null || recipients.some((r) => identity.recipients.includes(r))) return null;
  return (
    `${name} is encrypted${to}, and AGE_IDENTITY_FILE=${identity.file} holds the key of ${identity.recipients.map(shortKey).join(", ")}, not one of them; ` +
    `give the identity that matched AGE_RECIPIENTS_FILE when the backup was written (after a key rotation, keep the old identity in the file, one per line)`
  );
}

type RowCounts = Manifest["rowCounts"];

/** The manifest's table names and row counts, encrypted to the backup's recipients and armored (age -a) for the JSON manifest. */
export async function sealRowCounts(rowCounts: RowCounts, recipients: readonly string[], env: NodeJS.ProcessEnv): Promise<ManifestEncryption> {
  const age = encryptorFor(recipients, env);
  const sealed = await runCommand(age.program, [...age.args, "-a"], { env: filterEnv(env), input: JSON.stringify({ rowCounts }) });
  return { tool: "age", recipients: [...recipients], sealed };
}

/**
 * A manifest with its row counts readable: as it is for a plain backup, unsealed with the
 * identity for an encrypted one. Throws a TaskError (exit 4) naming AGE_IDENTITY_FILE when
 * the identity is missing or does not fit, or when the sealed part does not decrypt or parse.
 */
export async function openManifest(m: Manifest, identity: AgeIdentity | null, env: NodeJS.ProcessEnv): Promise<Manifest> {
  if (m.encryption === undefined) return m;
  const problem = identityProblem(m.name, m.encryption.recipients, identity);
  if (problem !== null || identity === null) throw new TaskError(ExitCode.refused, problem ?? "");
  const age = decryptorFor(identity, env);
  let text: string;
  try {
    text = await runCommand(age.program, age.args, { env: filterEnv(env), input: m.encryption.sealed });
  } catch (err) {
    throw new TaskError(ExitCode.refused, `the sealed row counts in ${m.name}${MANIFEST_SUFFIX} do not decrypt with AGE_IDENTITY_FILE=${identity.file}: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new TaskError(ExitCode.refused, `the sealed row counts in ${m.name}${MANIFEST_SUFFIX} decrypt to something that is not JSON`, { cause: err });
  }
  const rowCounts = (parsed as { rowCounts?: unknown } | null)?.rowCounts;
  const problemText = rowCountsProblem(rowCounts);
  if (problemText !== null) throw new TaskError(ExitCode.refused, `the sealed row counts in ${m.name}${MANIFEST_SUFFIX} are not usable: ${problemText}`);
  return { ...m, rowCounts: rowCounts as RowCounts };
}
