// The S3 mirror's settings (S3_*, AWS_*_FILE): null when S3_BUCKET is unset.
import { ConfigError } from "../core/errors.js";
import type { Env } from "./envValues.js";
import { bool, int, oneOf, readSecretFile, str } from "./envValues.js";
import type { Secret } from "../core/secret.js";

export interface S3Config {
  bucket: string;
  prefix: string;
  endpoint: string | null;
  region: string;
  forcePathStyle: boolean;
  sse: string | null;
  accessKeyId: Secret | null;
  secretAccessKey: Secret | null;
  retention: "mirror" | "keep";
  /**
   * S3_WAL_SNAPSHOT_SECONDS: how often wal-receive uploads the segment being received (its
   * snapshot in wal/) to the bucket, at most; 0: only completed segments go up. The recovery
   * point with the storage box lost is about this old while a segment fills.
   */
  walSnapshotSeconds: number;
}


/** S3's bucket naming rules (general purpose buckets), which S3-compatible servers follow too. */
function bucketProblem(bucket: string): string | null {
  if (bucket.length < 3 || bucket.length > 63) return "is not 3 to 63 characters long";
  if (!/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(bucket)) return "may hold only lowercase letters, digits, dots and hyphens, and must begin and end with a letter or digit";
  if (bucket.includes("..")) return "must not hold two adjacent dots";
  if (/^\d+\.\d+\.\d+\.\d+$/.test(bucket)) return "must not look like an IP address";
  return null;
}

/** S3_SSE: AES256, aws:kms (the AWS-managed key) or aws:kms:<key id, ARN or alias/name>. */
function sseSetting(env: Env): string | null {
  const sse = str(env, "S3_SSE", "");
  if (sse === "") return null;
  if (sse === "AES256" || sse === "aws:kms" || /^aws:kms:[A-Za-z0-9:/_-]+$/.test(sse)) return sse;
  throw new ConfigError(`S3_SSE=${JSON.stringify(sse)} is not a server-side encryption S3 knows; use AES256, aws:kms, or aws:kms:<key id or ARN>, or unset it`);
}

export function s3Config(env: Env): S3Config | null {
  const bucket = str(env, "S3_BUCKET", "");
  if (bucket === "") return null;
  const badBucket = bucketProblem(bucket);
  if (badBucket !== null) throw new ConfigError(`S3_BUCKET=${JSON.stringify(bucket)} ${badBucket}; use the bucket's exact name, e.g. pg-backups`);
  const region = str(env, "S3_REGION", "us-east-1");
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(region)) {
    throw new ConfigError(`S3_REGION=${JSON.stringify(region)} is not a region name (lowercase letters, digits and hyphens, e.g. eu-central-1); use the bucket's region, or unset it for us-east-1`);
  }
  const keyFile = env.AWS_ACCESS_KEY_ID_FILE;
  const secretFile = env.AWS_SECRET_ACCESS_KEY_FILE;
  const fix = "mount the secret or use the AWS SDK credential chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profile, instance role)";
  const accessKeyId = keyFile ? readSecretFile("AWS_ACCESS_KEY_ID_FILE", keyFile, fix) : null;
  const secretAccessKey = secretFile ? readSecretFile("AWS_SECRET_ACCESS_KEY_FILE", secretFile, fix) : null;
  if ((accessKeyId === null) !== (secretAccessKey === null)) {
    throw new ConfigError("AWS_ACCESS_KEY_ID_FILE and AWS_SECRET_ACCESS_KEY_FILE must be set together; set both or neither");
  }
  const endpoint = str(env, "S3_ENDPOINT", "");
  if (endpoint !== "" && !/^https?:\/\/[^\s/]+/.test(endpoint)) {
    throw new ConfigError(`S3_ENDPOINT=${JSON.stringify(endpoint)} is not an http(s) URL; use e.g. https://s3.example.com`);
  }
  return {
    bucket,
    prefix: str(env, "S3_PREFIX", "").replace(/^\/+|\/+$/g, ""),
    endpoint: endpoint === "" ? null : endpoint,
    region,
    forcePathStyle: bool(env, "S3_FORCE_PATH_STYLE", endpoint !== ""),
    sse: sseSetting(env),
    accessKeyId,
    secretAccessKey,
    retention: oneOf(env, "S3_RETENTION", ["mirror", "keep"] as const, "mirror"),
    walSnapshotSeconds: int(env, "S3_WAL_SNAPSHOT_SECONDS", 5, 0, 86_400, "seconds between uploads of the WAL segment being received (5 by default; 0: completed segments only)"),
  };
}
