// AGE_RECIPIENTS_FILE: the public keys every new backup is encrypted to, in age's own
// recipients-file syntax (one per line, `#` comments, blank lines). Only key types the age
// CLI handles without a plugin are accepted: X25519 (age1…), ssh-ed25519 and ssh-rsa.
// A bad line fails the task before any dump starts, naming the variable and the line.
import { readFileSync } from "node:fs";
import { ConfigError, errnoCode } from "../core/errors.js";
import { decodeBech32 } from "./bech32.js";

/** A recipients or identity file is a handful of lines; anything larger is not one. */
const MAX_BYTES = 64 * 1024;

const VARIABLE = "AGE_RECIPIENTS_FILE";
const MAKE_KEY = "make a key pair with `age-keygen -o identity.txt` (it prints the public key to put here)";
const SSH_TYPES = ["ssh-ed25519", "ssh-rsa"] as const;

/** Why one line is not a recipient, or null when it is one. Pure. */
export function recipientProblem(line: string): string | null {
  if (line.startsWith("age1")) {
    const decoded = decodeBech32(line);
    if (decoded === null) return "is not a valid age1 public key (its checksum fails: a character was changed or lost)";
    if (decoded.hrp !== "age") return `is a key of the age plugin "${decoded.hrp.slice(4)}"; plugins are not supported, use an X25519 (age1…) or SSH key`;
    if (decoded.data.length !== 32) return "is not an X25519 public key (wrong length)";
    return null;
  }
  if (line.startsWith("AGE-SECRET-KEY-")) return `is a private identity; ${VARIABLE} holds public keys only (\`age-keygen -y identity.txt\` prints the public key), and the identity goes to AGE_IDENTITY_FILE on the restore and verify services only`;
  const [type, blob] = line.split(/\s+/);
  if ((SSH_TYPES as readonly string[]).includes(type ?? "")) {
    const bytes = Buffer.from(blob ?? "", "base64");
    const name = bytes.length > 4 ? bytes.subarray(4, 4 + bytes.readUInt32BE(0)).toString("latin1") : "";
    return name === type ? null : `is not a complete ${type} public key`;
  }
  return "is neither an age1 public key nor an ssh-ed25519/ssh-rsa public key";
}

/**
 * The recipients of a file's text, each as age takes it on its command line (an SSH key
 * without its comment). Throws ConfigError naming `source` and the line.
 */
export function parseRecipients(text: string, source: string): string[] {
  const out: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const problem = recipientProblem(line);
    // A private key put here by mistake is never quoted: logs and alerts would spread it.
    const shown = line.toUpperCase().includes("SECRET") ? "" : ` ${JSON.stringify(line.slice(0, 40))}${line.length > 40 ? "…" : ""}`;
    if (problem !== null) throw new ConfigError(`${VARIABLE}=${source} line ${i + 1}:${shown} ${problem}`);
    const key = line.startsWith("age1") ? line : line.split(/\s+/).slice(0, 2).join(" ");
    if (!out.includes(key)) out.push(key);
  });
  if (out.length === 0) throw new ConfigError(`${VARIABLE}=${source} holds no recipient; ${MAKE_KEY}, or unset ${VARIABLE} to write unencrypted backups`);
  return out;
}

/**
 * An age key file's text (recipients or identity), at most MAX_BYTES: `mount` names what Swarm
 * provides it as, `what` the kind of file, for the ConfigError that names the variable.
 */
export function readKeyFile(variable: string, path: string, mount: string, what: string): string {
  let text: Buffer;
  try {
    text = readFileSync(path);
  } catch (err) {
    throw new ConfigError(`${variable}=${path} is not readable (${errnoCode(err) ?? "error"}); mount ${mount} or unset ${variable}`, { cause: err });
  }
  if (text.length > MAX_BYTES) throw new ConfigError(`${variable}=${path} is ${text.length} bytes, more than ${what} (${MAX_BYTES}); is it the right file?`);
  return text.toString("utf8");
}

export function readRecipientsFile(path: string): string[] {
  return parseRecipients(readKeyFile(VARIABLE, path, "the age_recipients config", "a recipients file"), path);
}
