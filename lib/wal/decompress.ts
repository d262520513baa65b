// Small WAL-archive files (timeline history) as pg_receivewal stores them: plain, gzip, or
// lz4 frames. gzip is Node's own; lz4 goes through the lz4 program (in the task image).
import { gunzipSync } from "node:zlib";
import { start } from "../core/proc.js";
import type { WalCompression } from "../physical/layout.js";

export async function decompressSmall(data: Buffer, compression: WalCompression, maxBytes: number): Promise<Buffer> {
  if (compression === "none") return data;
  if (compression === "gzip") return gunzipSync(data, { maxOutputLength: maxBytes });
  const child = start("lz4", ["-dc"], { env: { PATH: process.env.PATH }, stdin: "pipe", stdout: "pipe" });
  const chunks: Buffer[] = [];
  child.stdout?.on("data", (d: Buffer) => chunks.push(d));
  child.stdin?.end(data);
  await child.done;
  return Buffer.concat(chunks).subarray(0, maxBytes);
}
