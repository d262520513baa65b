// The S3 client for the mirror and the one place S3 failures become TaskErrors. Messages
// name the bucket/key and the setting to fix; SDK texts are redacted of every credential
// value, because some servers echo the access key id back in their error bodies.
import { createHash } from "node:crypto";
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import type { S3Config } from "../config/config.js";
import type { ExitCode } from "../core/errors.js";
import { TaskError, errnoCode } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import type { Tier } from "../store/naming.js";
import { Secret, redact } from "../core/secret.js";

export interface S3ClientOptions {
  /** SDK attempts per request (default 3); tests lower it so a dead server fails fast. */
  maxAttempts?: number;
}

/**
 * DeleteObjects is the one call S3 requires a body checksum for; with "when required" the SDK
 * still sends CRC32 there, which older MinIO and other S3-compatible servers refuse
 * ("MissingContentMD5"). This swaps it for Content-MD5 before signing, as the SDK's
 * supplemental-docs/MD5_FALLBACK.md describes. Low priority in the build step runs it after
 * the SDK's checksum middleware has added its headers.
 */
function useContentMd5ForDeleteObjects(client: S3Client): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string>; body?: unknown };
      if (context.commandName !== "DeleteObjectsCommand" || request.headers === undefined || typeof request.body !== "string") return next(args);
      for (const h of Object.keys(request.headers)) {
        if (/^x-amz-(sdk-)?checksum-/i.test(h)) delete request.headers[h];
      }
      request.headers["content-md5"] = createHash("md5").update(request.body).digest("base64");
      return next(args);
    },
    { step: "build", priority: "low", name: "contentMd5ForDeleteObjects" },
  );
}

export function createS3Client(s3: S3Config, opts: S3ClientOptions = {}): S3Client {
  const client = new S3Client({
    region: s3.region,
    forcePathStyle: s3.forcePathStyle,
    maxAttempts: opts.maxAttempts ?? 3,
    // Without timeouts a server that stops answering hangs the task until Swarm kills it.
    requestHandler: { connectionTimeout: 10_000, socketTimeout: 120_000 },
    ...(s3.endpoint !== null
      ? {
          endpoint: s3.endpoint,
          // S3-compatible servers (older MinIO, Ceph RGW, other vendors) reject or mangle the CRC32
          // checksum headers the SDK adds to every upload by default since 3.729; "when required"
          // sends them only where S3 demands a checksum (DeleteObjects, see below).
          requestChecksumCalculation: "WHEN_REQUIRED" as const,
          responseChecksumValidation: "WHEN_REQUIRED" as const,
        }
      : {}),
    ...(s3.accessKeyId !== null && s3.secretAccessKey !== null
      ? { credentials: { accessKeyId: s3.accessKeyId.reveal(), secretAccessKey: s3.secretAccessKey.reveal() } }
      : {}),
  });
  if (s3.endpoint !== null) useContentMd5ForDeleteObjects(client);
  return client;
}

/** `S3_PREFIX/` or "" when no prefix is set. */
export function keyPrefix(s3: S3Config): string {
  return s3.prefix === "" ? "" : `${s3.prefix}/`;
}

/** Where a backup file (or a sidecar: pass `name + suffix`) lives: S3_PREFIX/<tier>/<file>. */
export function objectKey(s3: S3Config, tier: Tier, file: string): string {
  return `${keyPrefix(s3)}${tier}/${file}`;
}

/**
 * The physical tier's folders in the bucket: base backups (with their sidecars), completed WAL
 * files (segments and timeline histories, each with its .sig), and the snapshots of the segment
 * being received, kept apart because they are replaced every few seconds: a lifecycle rule on
 * that folder alone can expire their old versions within a day (docs/s3.md "The physical tier in the bucket").
 */
export type PhysicalFolder = "base" | "wal" | "wal-partial";

/** Where a base backup or WAL file (or its sidecar: pass `name + suffix`) lives: S3_PREFIX/<folder>/<file>. */
export function physicalKey(s3: S3Config, folder: PhysicalFolder, file: string): string {
  return `${keyPrefix(s3)}${folder}/${file}`;
}

export function s3Url(s3: S3Config, key: string): string {
  return `s3://${s3.bucket}/${key}`;
}

/** Every credential value the client may send, from the _FILE secrets or the SDK chain. */
async function credentialSecrets(s3: S3Config, client: S3Client | null): Promise<Secret[]> {
  const out: Secret[] = [];
  if (s3.accessKeyId !== null) out.push(s3.accessKeyId);
  if (s3.secretAccessKey !== null) out.push(s3.secretAccessKey);
  if (client !== null && s3.accessKeyId === null) {
    const creds = await client.config.credentials().catch(() => null);
    for (const v of [creds?.accessKeyId, creds?.secretAccessKey, creds?.sessionToken]) if (v) out.push(new Secret(v));
  }
  return out;
}

const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENETUNREACH", "ECONNABORTED"]);
const CREDENTIAL_NAMES = new Set(["InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "TokenRefreshRequired"]);

function endpointName(s3: S3Config): string {
  return s3.endpoint !== null ? `S3_ENDPOINT=${s3.endpoint}` : `AWS S3 in S3_REGION=${s3.region}`;
}

function credentialSource(s3: S3Config): string {
  return s3.accessKeyId !== null ? "AWS_ACCESS_KEY_ID_FILE/AWS_SECRET_ACCESS_KEY_FILE" : "the AWS SDK credential chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profile, instance role)";
}

/** What went wrong and what to do, from an SDK or network error; unredacted. */
export function explainS3Error(s3: S3Config, err: unknown): string {
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const name = e.name ?? "Error";
  const status = e.$metadata?.httpStatusCode;
  const text = e.message && e.message !== name && e.message !== "UnknownError" ? `${name}: ${e.message}` : `${name}${status ? `, HTTP ${status}` : ""}`;
  const code = errnoCode(err);
  if (code !== undefined && NETWORK_CODES.has(code)) return `cannot reach ${endpointName(s3)} (${code}); check the endpoint, the network and that the server is up`;
  if (name === "TimeoutError" || name === "RequestTimeout") return `${endpointName(s3)} did not answer in time (${text}); check the network and the server`;
  if (name === "CredentialsProviderError") return `no AWS credentials found (${e.message ?? name}); set AWS_ACCESS_KEY_ID_FILE and AWS_SECRET_ACCESS_KEY_FILE or configure the AWS SDK credential chain`;
  if (CREDENTIAL_NAMES.has(name)) return `S3 rejected the credentials (${text}); check ${credentialSource(s3)}`;
  if (name === "NoSuchBucket") return `the bucket S3_BUCKET=${s3.bucket} does not exist at ${endpointName(s3)}; create it or fix S3_BUCKET`;
  if (name === "AccessDenied" || status === 403) return `access denied (${text}); check the credentials from ${credentialSource(s3)}: they must be valid and allow s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on S3_BUCKET=${s3.bucket}`;
  if (name === "PermanentRedirect" || name === "AuthorizationHeaderMalformed" || status === 301) return `the bucket is in another region (${text}); set S3_REGION to the bucket's region`;
  return text;
}

/**
 * A TaskError for a failed S3 `action` ("upload of s3://b/k"), its message redacted of every
 * credential value. The cause is a redacted copy too: a raw SDK error carries fields such as
 * AWSAccessKeyId that a logger serialising the cause would print.
 */
export async function s3Failure(s3: S3Config, client: S3Client | null, action: string, err: unknown, exitCode: ExitCode): Promise<TaskError> {
  if (err instanceof TaskError) return err;
  const secrets = await credentialSecrets(s3, client);
  const raw = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const cause = new Error(redact(raw.message ?? String(err), secrets));
  cause.name = raw.name ?? "Error";
  Object.assign(cause, { code: errnoCode(err), httpStatusCode: raw.$metadata?.httpStatusCode });
  return new TaskError(exitCode, redact(`${action} failed: ${explainS3Error(s3, err)}`, secrets), { cause });
}

/** Everything a mirror operation needs: the settings, a client and a logger. */
export interface MirrorTarget {
  s3: S3Config;
  client: S3Client;
  log: Logger;
  /** Bytes per multipart part (at least 5 MiB, the S3 minimum); smaller files go up in one PUT. */
  partSize: number;
  /** Parts in flight at once. */
  queueSize: number;
}

export interface MirrorOptions extends S3ClientOptions {
  partSize?: number;
  queueSize?: number;
}

/** Files above this go up as a multipart upload in parts of this size. */
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;

export function mirrorTarget(s3: S3Config, log: Logger, opts: MirrorOptions = {}): MirrorTarget {
  return { s3, client: createS3Client(s3, opts), log, partSize: opts.partSize ?? DEFAULT_PART_SIZE, queueSize: opts.queueSize ?? 4 };
}

/** A small object that turned out larger than its reader accepts. */
export class ObjectTooLarge extends Error {
  constructor(
    readonly key: string,
    readonly bytes: number,
    readonly maxBytes: number,
  ) {
    super(`${key} is ${bytes} bytes or more, more than the ${maxBytes} it may have; it was not read`);
    this.name = "ObjectTooLarge";
  }
}

/**
 * A small object's bytes, or null when it does not exist. Objects are written by whoever can
 * write the bucket, so at most `maxBytes` are read (throws ObjectTooLarge past that).
 */
export async function getBytes(t: MirrorTarget, key: string, maxBytes = Infinity): Promise<Buffer | null> {
  let r;
  try {
    r = await t.client.send(new GetObjectCommand({ Bucket: t.s3.bucket, Key: key }));
  } catch (err) {
    if ((err as Error).name === "NoSuchKey") return null;
    throw err;
  }
  const body = r.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined;
  if (body === undefined) return Buffer.alloc(0);
  if ((r.ContentLength ?? 0) > maxBytes) {
    body.destroy?.();
    throw new ObjectTooLarge(key, r.ContentLength ?? 0, maxBytes);
  }
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of body) {
    bytes += chunk.length;
    if (bytes > maxBytes) {
      body.destroy?.();
      throw new ObjectTooLarge(key, bytes, maxBytes);
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

/** A small object's text, or null when it does not exist; at most `maxBytes` are read. */
export async function getText(t: MirrorTarget, key: string, maxBytes = Infinity): Promise<string | null> {
  return (await getBytes(t, key, maxBytes))?.toString("utf8") ?? null;
}
