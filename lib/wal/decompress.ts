// WAL-archive files decompressed in memory as pg_receivewal stores them: plain, gzip, or lz4
// frames. gzip is Node's own; lz4 goes through the lz4 program (in the task image).
// A .partial (the segment being received: its compressed stream has no end yet) is decoded
// as far as it goes; both decoders emit only whole, checked blocks, and recovery reads what
// follows the last complete record as the end of WAL.
import { createGunzip, constants as zlib } from "node:zlib";
import { start } from "../core/proc.js";
import type { WalCompression } from "../physical/layout.js";

export interface DecompressOptions {
  /** Decode an unfinished stream as far as it goes instead of failing at its end. */
  partial: boolean;
  /** More output than this is an error (a segment never decompresses beyond the segment size). */
  maxBytes: number;
}

function gunzip(data: Uint8Array, o: DecompressOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // Z_SYNC_FLUSH at the end: an unfinished stream yields what it holds instead of "unexpected end of file".
    const z = createGunzip(o.partial ? { finishFlush: zlib.Z_SYNC_FLUSH } : {});
    const out: Buffer[] = [];
    let size = 0;
    z.on("data", (d: Buffer) => {
      size += d.length;
      if (size > o.maxBytes) z.destroy(new Error(`decompresses to more than ${o.maxBytes} bytes`));
      else out.push(d);
    });
    z.on("error", (err) => (o.partial && size <= o.maxBytes ? resolve(Buffer.concat(out)) : reject(err)));
    z.on("end", () => resolve(Buffer.concat(out)));
    z.end(data);
  });
}

async function unlz4(data: Uint8Array, o: DecompressOptions): Promise<Buffer> {
  const child = start("lz4", ["-dc"], { env: { PATH: process.env.PATH }, stdin: "pipe", stdout: "pipe" });
  const out: Buffer[] = [];
  let size = 0;
  child.stdout?.on("data", (d: Buffer) => {
    size += d.length;
    if (size <= o.maxBytes) out.push(d);
    else child.kill();
  });
  child.stdin?.end(data);
  const exit = await child.exit;
  if (size > o.maxBytes) throw new Error(`decompresses to more than ${o.maxBytes} bytes`);
  // A decompressor that could not start at all decoded nothing: that is no unfinished stream.
  if (!exit.started || !o.partial) await child.done;
  return Buffer.concat(out);
}

export async function decompressWal(data: Uint8Array, compression: WalCompression, o: DecompressOptions): Promise<Buffer> {
  if (compression === "none") {
    if (data.length > o.maxBytes) throw new Error(`holds more than ${o.maxBytes} bytes`);
    return Buffer.from(data.buffer, data.byteOffset, data.length);
  }
  return compression === "gzip" ? gunzip(data, o) : unlz4(data, o);
}

/** Small files (timeline history): the whole stream, at most `maxBytes`. */
export function decompressSmall(data: Buffer, compression: WalCompression, maxBytes: number): Promise<Buffer> {
  return decompressWal(data, compression, { partial: false, maxBytes });
}
