// Object operations the mirror of every tier shares: a paginated listing, HEAD, small PUTs,
// a streamed upload proved by HEAD, batched deletes and a resumable download into a file.
// They throw the SDK's errors (or a TaskError for what S3 answered wrongly); callers wrap them
// with s3Failure, which names the action, the setting to fix and the exit code of their task.
import { createHash } from "node:crypto";
import type { Hash } from "node:crypto";
import { Writable } from "node:stream";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { FileHandle } from "node:fs/promises";
import type { CopyObjectCommandInput, PutObjectCommandInput } from "@aws-sdk/client-s3";
import { CopyObjectCommand, DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import type { S3Config } from "../config/config.js";
import { ExitCode, TaskError } from "../core/errors.js";
import type { MirrorTarget } from "./client.js";
import { s3Url } from "./client.js";

/** S3 allows at most 10 000 parts; larger files get larger parts. */
const MAX_PARTS = 10_000;
const PROGRESS_MS = 5000;
/** A download cut off mid-body (a reset connection) resumes where it stopped, this many times. */
const DOWNLOAD_ATTEMPTS = 5;

export interface ListedObject {
  key: string;
  size: number;
  lastModified: Date;
}

export interface ObjectHead {
  size: number;
  metadata: Record<string, string>;
  lastModified: Date;
}

/** S3_SSE: AES256, aws:kms, or aws:kms:<key id> for a customer-managed key. */
export function sseParams(s3: S3Config): Partial<PutObjectCommandInput> {
  if (s3.sse === null) return {};
  const kms = /^aws:kms:(.+)$/.exec(s3.sse);
  return kms !== null ? { ServerSideEncryption: "aws:kms", SSEKMSKeyId: kms[1] } : { ServerSideEncryption: s3.sse as PutObjectCommandInput["ServerSideEncryption"] };
}

/** Every object under `prefix`, in key order, from one paginated LIST (no GETs). */
export async function listObjects(t: MirrorTarget, prefix: string): Promise<ListedObject[]> {
  const out: ListedObject[] = [];
  let token: string | undefined;
  do {
    const r = await t.client.send(new ListObjectsV2Command({ Bucket: t.s3.bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of r.Contents ?? []) if (o.Key !== undefined) out.push({ key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0) });
    token = r.IsTruncated === true ? r.NextContinuationToken : undefined;
  } while (token !== undefined);
  return out;
}

/** The object's size, user metadata and time, or null when it does not exist. */
export async function headObject(t: MirrorTarget, key: string): Promise<ObjectHead | null> {
  try {
    const h = await t.client.send(new HeadObjectCommand({ Bucket: t.s3.bucket, Key: key }));
    return { size: h.ContentLength ?? 0, metadata: h.Metadata ?? {}, lastModified: h.LastModified ?? new Date(0) };
  } catch (err) {
    const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
    if (e.name === "NotFound" || e.name === "NoSuchKey" || e.$metadata?.httpStatusCode === 404) return null;
    throw err;
  }
}

/** One PUT of a small body (a sidecar, a signature, a WAL file read into memory). */
/** A copy of `from` at `to` in the same bucket, its metadata kept (a server-side copy: nothing is downloaded). */
export async function copyObject(t: MirrorTarget, from: string, to: string): Promise<void> {
  const source = `${t.s3.bucket}/${from.split("/").map(encodeURIComponent).join("/")}`;
  await t.client.send(new CopyObjectCommand({ Bucket: t.s3.bucket, Key: to, CopySource: source, ...(sseParams(t.s3) as Partial<CopyObjectCommandInput>) }));
}

export async function putBytes(t: MirrorTarget, key: string, body: string | Uint8Array, metadata: Record<string, string> = {}, contentType = "application/octet-stream"): Promise<void> {
  await t.client.send(new PutObjectCommand({ Bucket: t.s3.bucket, Key: key, Body: body, ContentType: contentType, Metadata: metadata, ...sseParams(t.s3) }));
}

/**
 * Uploads `body` (multipart above the part size) with its sha256 as metadata, then proves the
 * object with a HEAD: its size and sha256 metadata. `hashed`: the sha256 of what was actually
 * sent (the caller taps the stream), compared with `sha256` before the HEAD. Returns the parts used.
 */
export async function uploadStream(t: MirrorTarget, key: string, body: Readable, o: { bytes: number; sha256: string; hashed: () => string; label: string }): Promise<number> {
  const upload = new Upload({
    client: t.client,
    params: { Bucket: t.s3.bucket, Key: key, Body: body, Metadata: { sha256: o.sha256 }, ContentType: "application/octet-stream", ...sseParams(t.s3) },
    partSize: Math.max(t.partSize, Math.ceil(o.bytes / MAX_PARTS)),
    queueSize: t.queueSize,
    leavePartsOnError: false,
  });
  let parts = 1;
  let lastLog = Date.now();
  upload.on("httpUploadProgress", (p) => {
    parts = Math.max(parts, p.part ?? 1);
    if (Date.now() - lastLog < PROGRESS_MS) return;
    lastLog = Date.now();
    t.log.info({ key, uploadedBytes: p.loaded, bytes: o.bytes }, `upload progress: ${((p.loaded ?? 0) / 1e6).toFixed(0)} of ${(o.bytes / 1e6).toFixed(0)} MB`);
  });
  await upload.done();
  const sent = o.hashed();
  if (sent !== o.sha256) {
    throw new TaskError(ExitCode.mirrorFailed, `${o.label} does not match its manifest's sha256 (read ${sent.slice(0, 12)}…, recorded ${o.sha256.slice(0, 12)}…); the local file is corrupt, run verify`);
  }
  const head = await headObject(t, key);
  if (head === null || head.size !== o.bytes || head.metadata.sha256 !== o.sha256) {
    throw new TaskError(ExitCode.mirrorFailed, `${s3Url(t.s3, key)} does not match after upload (size ${head?.size ?? "none"} vs ${o.bytes}, sha256 metadata ${head?.metadata.sha256 ?? "missing"}); the server lost or changed data`);
  }
  return parts;
}

/**
 * Deletes keys (DeleteObjects, 1000 per request), in the order given; keys S3 does not hold
 * are fine. Returns the keys S3 reports deleted. Throws a TaskError when S3 refuses any.
 */
export async function deleteKeys(t: MirrorTarget, keys: readonly string[]): Promise<string[]> {
  const deleted: string[] = [];
  for (let i = 0; i < keys.length; i += 1000) {
    const batch = keys.slice(i, i + 1000);
    const r = await t.client.send(new DeleteObjectsCommand({ Bucket: t.s3.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: false } }));
    const failed = r.Errors ?? [];
    if (failed.length > 0) {
      const first = failed[0];
      throw new TaskError(ExitCode.mirrorFailed, `S3 refused to delete ${failed.length} object(s), e.g. ${s3Url(t.s3, first?.Key ?? "?")} (${first?.Code ?? "error"}: ${first?.Message ?? ""})`);
    }
    deleted.push(...(r.Deleted ?? []).map((d) => d.Key ?? ""));
  }
  return deleted;
}

/**
 * Downloads `key` into the open file `fh` (from its start), `bytes` long, feeding `hash`. A body
 * cut off midway is resumed with a Range request from where it stopped; an object of another
 * size is refused. Returns the bytes written.
 */
export async function downloadInto(t: MirrorTarget, key: string, fh: FileHandle, bytes: number, hash: Hash, onBytes: (n: number) => void = () => undefined): Promise<number> {
  let at = 0;
  for (let attempt = 1; ; attempt++) {
    try {
      const r = await t.client.send(new GetObjectCommand({ Bucket: t.s3.bucket, Key: key, ...(at > 0 ? { Range: `bytes=${at}-` } : {}) }));
      const total = at + (r.ContentLength ?? 0);
      if (total !== bytes) throw new TaskError(ExitCode.refused, `${s3Url(t.s3, key)} is ${total} bytes, not the ${bytes} its manifest records; it was changed in the bucket`);
      // A chunk counts (hash, position) only once it is on disk: a body cut off resumes exactly after it.
      const out = new Writable({
        highWaterMark: 1 << 20,
        write(chunk: Buffer, _enc, done) {
          fh.write(chunk, 0, chunk.length, at).then(
            () => {
              hash.update(chunk);
              at += chunk.length;
              onBytes(chunk.length);
              done();
            },
            (err: Error) => done(err),
          );
        },
      });
      await pipeline(r.Body as Readable, out);
      if (at !== bytes) throw new Error(`the download ended after ${at} of ${bytes} bytes`);
      return at;
    } catch (err) {
      if (err instanceof TaskError || attempt >= DOWNLOAD_ATTEMPTS) throw err;
      t.log.warn({ key, at, attempt, err: (err as Error).message }, `download of ${s3Url(t.s3, key)} broke off at byte ${at}; resuming`);
    }
  }
}

/** sha256 of a buffer, hex. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}
