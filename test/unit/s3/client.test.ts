// The S3 client settings, object keys, and how S3 failures become clear, redacted errors.
import { describe, expect, it } from "vitest";
import type { S3Config } from "../../../lib/config/config.js";
import { resolveConfig } from "../../../lib/config/config.js";
import { ExitCode, TaskError } from "../../../lib/core/errors.js";
import { createS3Client, explainS3Error, keyPrefix, objectKey, physicalKey, s3Failure } from "../../../lib/s3/client.js";
import { Secret } from "../../../lib/core/secret.js";

const KEY_ID = "AKIAEXAMPLEKEYID";
const SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

function s3(extra: Partial<S3Config> = {}): S3Config {
  return {
    bucket: "backups",
    prefix: "pg/prod",
    endpoint: "http://127.0.0.1:9000",
    region: "eu-central-1",
    forcePathStyle: true,
    sse: null,
    accessKeyId: new Secret(KEY_ID),
    secretAccessKey: new Secret(SECRET),
    retention: "mirror",
    walSnapshotSeconds: 5,
    ...extra,
  };
}

function sdkError(name: string, message: string, status?: number, fields: Record<string, unknown> = {}): Error {
  const e = new Error(message);
  e.name = name;
  return Object.assign(e, { $metadata: { httpStatusCode: status }, ...fields });
}

function netError(code: string): Error {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:9000`), { code });
}

describe("object keys", () => {
  it.each<[string, string]>([
    ["", "full/20240101_030000_full.sql.bz2.sha256"],
    ["pg/prod", "pg/prod/full/20240101_030000_full.sql.bz2.sha256"],
  ])("prefix %j", (prefix, key) => {
    expect(objectKey(s3({ prefix }), "full", "20240101_030000_full.sql.bz2.sha256")).toBe(key);
    expect(keyPrefix(s3({ prefix }))).toBe(prefix === "" ? "" : `${prefix}/`);
  });

  it("S3_PREFIX loses leading and trailing slashes in the config, so keys never hold //", () => {
    const c = resolveConfig({ S3_BUCKET: "bkt", S3_PREFIX: "/a/b/", BACKUP_DIR: "/x" });
    expect(c.s3 && objectKey(c.s3, "incremental", "n")).toBe("a/b/incremental/n");
  });

  it.each<[string, "base" | "wal" | "wal-partial", string, string]>([
    ["", "base", "20240101_030000_base.tar.zst.json", "base/20240101_030000_base.tar.zst.json"],
    ["pg/prod", "wal", "000000010000000000000003.gz.age.sig", "pg/prod/wal/000000010000000000000003.gz.age.sig"],
    ["pg/prod", "wal-partial", "000000010000000000000004.gz.partial", "pg/prod/wal-partial/000000010000000000000004.gz.partial"],
  ])("the physical tier, prefix %j: %s/%s", (prefix, folder, file, key) => {
    expect(physicalKey(s3({ prefix }), folder, file)).toBe(key);
  });
});

describe("createS3Client", () => {
  it("with an endpoint: path style and checksums only when required (S3-compatible servers reject the new defaults)", async () => {
    const client = createS3Client(s3());
    expect(await client.config.requestChecksumCalculation()).toBe("WHEN_REQUIRED");
    expect(await client.config.responseChecksumValidation()).toBe("WHEN_REQUIRED");
    expect(client.config.forcePathStyle).toBe(true);
    expect(await client.config.region()).toBe("eu-central-1");
    expect((await client.config.credentials()).secretAccessKey).toBe(SECRET);
    const ep = await client.config.endpoint?.();
    expect(`${ep?.protocol}//${ep?.hostname}:${ep?.port}`).toBe("http://127.0.0.1:9000");
    expect(client.middlewareStack.identify()).toContain("contentMd5ForDeleteObjects - build");
  });

  it("without an endpoint (AWS itself): the SDK's checksum defaults stay", async () => {
    const client = createS3Client(s3({ endpoint: null, forcePathStyle: false }));
    expect(await client.config.requestChecksumCalculation()).toBe("WHEN_SUPPORTED");
    expect(client.config.forcePathStyle).toBe(false);
    expect(client.middlewareStack.identify()).not.toContain("contentMd5ForDeleteObjects - build");
  });
});

describe("explainS3Error", () => {
  it.each<[string, Error, RegExp]>([
    ["server down", netError("ECONNREFUSED"), /cannot reach S3_ENDPOINT=http:\/\/127\.0\.0\.1:9000 \(ECONNREFUSED\); check the endpoint/],
    ["unknown host", netError("ENOTFOUND"), /cannot reach .*ENOTFOUND/],
    ["unknown key id", sdkError("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.", 403), /S3 rejected the credentials \(InvalidAccessKeyId: .*\); check AWS_ACCESS_KEY_ID_FILE\/AWS_SECRET_ACCESS_KEY_FILE/],
    ["wrong secret", sdkError("SignatureDoesNotMatch", "The request signature we calculated does not match", 403), /S3 rejected the credentials/],
    ["HEAD 403 has no body", sdkError("Unknown", "UnknownError", 403), /access denied \(Unknown, HTTP 403\); check the credentials .*s3:PutObject/],
    ["no bucket", sdkError("NoSuchBucket", "The specified bucket does not exist", 404), /S3_BUCKET=backups does not exist .*create it or fix S3_BUCKET/],
    ["no credentials anywhere", sdkError("CredentialsProviderError", "Could not load credentials from any providers"), /no AWS credentials found .*AWS_ACCESS_KEY_ID_FILE/],
    ["timeout", sdkError("TimeoutError", "socket timed out"), /did not answer in time/],
    ["wrong region", sdkError("PermanentRedirect", "The bucket you are attempting to access must be addressed using the specified endpoint", 301), /set S3_REGION/],
    ["anything else keeps the SDK's words", sdkError("InternalError", "We encountered an internal error", 500), /^InternalError: We encountered an internal error$/],
  ])("%s", (_label, err, expected) => {
    expect(explainS3Error(s3(), err)).toMatch(expected);
  });

  it("names the SDK chain when no _FILE credentials are configured", () => {
    const msg = explainS3Error(s3({ accessKeyId: null, secretAccessKey: null }), sdkError("InvalidAccessKeyId", "nope", 403));
    expect(msg).toMatch(/AWS SDK credential chain/);
  });
});

describe("s3Failure", () => {
  it("redacts the access key id and secret from the message and from the cause, and keeps the exit code", async () => {
    const raw = sdkError("SignatureDoesNotMatch", `signature for ${KEY_ID} with ${SECRET} does not match`, 403, { AWSAccessKeyId: KEY_ID, StringToSign: SECRET });
    const err = await s3Failure(s3(), null, "upload of x", raw, ExitCode.mirrorFailed);
    expect(err).toBeInstanceOf(TaskError);
    expect(err.exitCode).toBe(ExitCode.mirrorFailed);
    expect(err.message).toMatch(/^upload of x failed: S3 rejected the credentials/);
    const rendered = JSON.stringify({ message: err.message, cause: err.cause }) + String((err.cause as Error).message) + JSON.stringify(Object.entries(err.cause as object));
    expect(rendered).not.toContain(KEY_ID);
    expect(rendered).not.toContain(SECRET);
  });

  it("redacts credentials from the SDK chain too", async () => {
    const chainS3 = s3({ accessKeyId: null, secretAccessKey: null });
    const client = createS3Client({ ...chainS3 });
    Object.assign(client.config, { credentials: async () => ({ accessKeyId: KEY_ID, secretAccessKey: SECRET }) });
    const err = await s3Failure(chainS3, client, "listing", sdkError("InternalError", `echo ${KEY_ID}:${SECRET}`, 500), ExitCode.mirrorFailed);
    expect(err.message).toBe("listing failed: InternalError: echo [redacted]:[redacted]");
  });

  it("passes a TaskError through unchanged", async () => {
    const own = new TaskError(ExitCode.refused, "corrupt");
    expect(await s3Failure(s3(), null, "download", own, ExitCode.failed)).toBe(own);
  });
});
