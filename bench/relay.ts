// `node dist/bench/relay.js OUT PROGRAM [ARGS...]`: the least a checked dump stream costs.
// pg_dumpall's output is relayed through this Node process, rows counted per COPY block as
// `backup` does, into the compressor, whose output is hashed and written to OUT: our
// pipeline without the orchestration (fingerprint, lock, manifest, per-database pg_dump).
// The bench sets it beside the bare shell pipeline and `backup full` to split the gap.
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import type { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { hashTap } from "../lib/store/checksum.js";
import { start, spawnFilter } from "../lib/core/proc.js";
import { RowCounter } from "../lib/backup/rowCounter.js";
import { relay } from "../lib/backup/sink.js";

async function main(): Promise<void> {
  const [out, program, ...args] = process.argv.slice(2);
  if (out === undefined || program === undefined) throw new Error("usage: relay.js OUT PROGRAM [ARGS...]");
  const compressor = spawnFilter(program, args, process.env);
  const hash = createHash("sha256");
  const written = pipeline(compressor.stdout as Readable, hashTap(hash), createWriteStream(out));
  const dump = start("pg_dumpall", [], { env: process.env, stdout: "pipe" });
  const counter = new RowCounter();
  await relay(dump.stdout as Readable, compressor.stdin as Writable, (b) => counter.push(b));
  (compressor.stdin as Writable).end();
  await Promise.all([dump.done, compressor.done, written]);
  const rows = [...counter.counts.values()].reduce((a, b) => a + b, 0);
  process.stdout.write(`${rows} rows, sha256 ${hash.digest("hex")}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`relay: ${(err as Error).message}\n`);
  process.exit(1);
});
