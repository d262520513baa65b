// A real S3 server for integration tests: s3rver on 127.0.0.1, a random or given port, its
// objects in a temp folder (so a server stopped and started again on the same folder and port
// is an outage that ends), and the environment the CLI needs to use it.
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { tempDir } from "./helpers.js";

// s3rver ships no types; this is the part of its API the tests use.
interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}
type S3rverCtor = new (opts: Record<string, unknown>) => S3rverInstance;
const S3rver = createRequire(import.meta.url)("s3rver") as S3rverCtor;

export const BUCKET = "pgsb-backups";
/** s3rver's only account; it checks the access key id but not V4 signatures, so any secret passes. */
export const GOOD = { id: "S3RVER", secret: "S3RVER" };

export interface Server {
  port: number;
  dir: string;
  stop(): Promise<void>;
}

export async function startS3(dir = tempDir("pgsb-s3rver-"), port = 0): Promise<Server> {
  const server = new S3rver({ address: "127.0.0.1", port, silent: true, directory: dir, configureBuckets: [{ name: BUCKET }] });
  const addr = await server.run();
  return { port: addr.port, dir, stop: () => server.close() };
}

export function credentialFiles(id: string, secret: string): Record<string, string> {
  const dir = tempDir("pgsb-s3cred-");
  writeFileSync(join(dir, "id"), id + "\n", { mode: 0o600 });
  writeFileSync(join(dir, "secret"), secret + "\n", { mode: 0o600 });
  return { AWS_ACCESS_KEY_ID_FILE: join(dir, "id"), AWS_SECRET_ACCESS_KEY_FILE: join(dir, "secret") };
}

export function s3Env(port: number, prefix: string, creds = GOOD): Record<string, string> {
  return { S3_BUCKET: BUCKET, S3_ENDPOINT: `http://127.0.0.1:${port}`, S3_REGION: "us-east-1", S3_PREFIX: prefix, ...credentialFiles(creds.id, creds.secret) };
}
