// AGE_IDENTITY_FILE: the private key that decrypts encrypted backups, held only by the
// restore and verify services. Read once at start to check it and to learn its public keys,
// so a restore can say which backup the identity cannot open before anything is touched;
// the age CLI reads the file itself when it decrypts (its path reaches argv, never its
// content). No message quotes a line of it.
import { createPrivateKey, createPublicKey } from "node:crypto";
import { ConfigError } from "../core/errors.js";
import { readKeyFile } from "./ageRecipients.js";
import { decodeBech32, encodeBech32 } from "./bech32.js";

export interface AgeIdentity {
  /** The file age reads with -i. */
  file: string;
  /** The public keys (recipients) of the identities in it, as AGE_RECIPIENTS_FILE writes them. */
  recipients: string[];
}

const VARIABLE = "AGE_IDENTITY_FILE";
/** PKCS#8 DER prefix of an X25519 private key; the 32-byte scalar follows. */
const X25519_PKCS8 = Buffer.from("302e020100300506032b656e04220420", "hex");

/** The age1… public key of an X25519 scalar. */
export function x25519Recipient(scalar: Buffer): string {
  const priv = createPrivateKey({ key: Buffer.concat([X25519_PKCS8, scalar]), format: "der", type: "pkcs8" });
  const x = createPublicKey(priv).export({ format: "jwk" }).x as string;
  return encodeBech32("age", Buffer.from(x, "base64url"));
}

function sshString(buf: Buffer, at: number): { value: Buffer; next: number } | null {
  if (at + 4 > buf.length) return null;
  const len = buf.readUInt32BE(at);
  if (at + 4 + len > buf.length) return null;
  return { value: buf.subarray(at + 4, at + 4 + len), next: at + 4 + len };
}

/**
 * The public key of an OpenSSH private key file ("openssh-key-v1": magic, cipher, kdf, kdf
 * options, key count, then the public key in clear), or a problem. Pure.
 */
export function sshIdentityRecipient(pem: string): { recipient: string } | { problem: string } {
  const body = pem.replace(/-----(BEGIN|END) OPENSSH PRIVATE KEY-----/g, "").replace(/\s+/g, "");
  const buf = Buffer.from(body, "base64");
  const magic = "openssh-key-v1\0";
  if (buf.subarray(0, magic.length).toString("latin1") !== magic) return { problem: "holds an OpenSSH key that cannot be read" };
  const cipher = sshString(buf, magic.length);
  const kdf = cipher && sshString(buf, cipher.next);
  const opts = kdf && sshString(buf, kdf.next);
  if (!opts) return { problem: "holds an OpenSSH key that cannot be read" };
  if (cipher.value.toString() !== "none") return { problem: "holds a passphrase-protected SSH key; a task cannot type a passphrase: store the key without one (the Docker secret protects it)" };
  const pub = sshString(buf, opts.next + 4);
  const type = pub && sshString(pub.value, 0)?.value.toString("latin1");
  if (!pub || (type !== "ssh-ed25519" && type !== "ssh-rsa")) return { problem: "holds an SSH key of a type age does not use (only ssh-ed25519 and ssh-rsa)" };
  return { recipient: `${type} ${pub.value.toString("base64")}` };
}

/** The public keys of an identity file's text; throws ConfigError naming the variable and the line, never its content. */
export function parseIdentity(text: string, file: string): AgeIdentity {
  if (text.includes("-----BEGIN OPENSSH PRIVATE KEY-----")) {
    const r = sshIdentityRecipient(text);
    if ("problem" in r) throw new ConfigError(`${VARIABLE}=${file} ${r.problem}`);
    return { file, recipients: [r.recipient] };
  }
  const recipients: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const decoded = line.startsWith("AGE-SECRET-KEY-1") ? decodeBech32(line) : null;
    if (decoded === null || decoded.hrp !== "age-secret-key-" || decoded.data.length !== 32) {
      const what = line.startsWith("age1") ? "is a public key, not an identity" : "is not an age identity (AGE-SECRET-KEY-1…)";
      throw new ConfigError(`${VARIABLE}=${file} line ${i + 1} ${what}; give the file \`age-keygen -o identity.txt\` wrote (or an unencrypted ssh-ed25519/ssh-rsa private key)`);
    }
    recipients.push(x25519Recipient(decoded.data));
  });
  if (recipients.length === 0) throw new ConfigError(`${VARIABLE}=${file} holds no identity; give the file \`age-keygen -o identity.txt\` wrote`);
  return { file, recipients };
}

export function readIdentityFile(file: string): AgeIdentity {
  return parseIdentity(readKeyFile(VARIABLE, file, "the age_identity secret", "an identity file"), file);
}
