// A base backup read once and extracted: openVerified hands on each 8 MiB chunk of the stored
// file only once it matched the manifest's chunk hash, age (for a .age file) and the
// decompressor get nothing else (they are joined by OS pipes), and the tar reader that checks
// each member writes it (tarExtract.ts). A format-1 backup has no chunk list: its whole-file
// sha256 is checked at the end of the same read, and the caller renames nothing into place
// before this resolved. Every refusal is exit 4 naming the file (and chunk, or member, or
// AGE_IDENTITY_FILE); the folder `into` is the caller's to remove.
import type { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { decompressorFor, filterEnv } from "../backup/compression.js";
import { decryptorFor } from "../backup/encryption.js";
import { settleStages } from "../core/concurrency.js";
import { ExitCode, TaskError, errnoCode } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import type { ChainLink } from "../core/pipeChain.js";
import { startChain } from "../core/pipeChain.js";
import { ProcessError, isSecondaryFailure } from "../core/proc.js";
import type { Program } from "../core/proc.js";
import type { AgeIdentity } from "../keys/ageIdentity.js";
import { assertDecryptable, decryptionProblem } from "../restore/decompress.js";
import type { SqlSource } from "../restore/decompress.js";
import { IntegrityError, openVerified } from "../store/verifiedRead.js";
import type { Verification } from "../store/verifiedRead.js";
import type { Extracted } from "./tarExtract.js";
import { extractTar } from "./tarExtract.js";
import { TarMemberError } from "./tarPolicy.js";
import type { TrustedBase } from "./trustedBase.js";

export interface BaseReadOptions {
  identity: AgeIdentity | null;
  threads: number;
  env: NodeJS.ProcessEnv;
  log: Logger;
  /** Test hook: awaited after each verified piece of the stored file was handed on (1-based). */
  afterChunk?: (index: number) => Promise<void>;
}

export type ExtractedBase = Extracted & { verification: Verification; storedBytes: number };

function sourceOf(b: TrustedBase): SqlSource {
  const codec = b.manifest.compression.codec;
  return { name: b.name, path: b.path, codec, encrypted: b.manifest.encryption !== undefined, recipients: b.manifest.encryption?.recipients ?? null, expect: b.expect };
}

/** Throws the refusal (exit 4) naming AGE_IDENTITY_FILE and the recipients when `b` is encrypted and `identity` cannot open it. */
export function assertBaseDecryptable(b: TrustedBase, identity: AgeIdentity | null): void {
  assertDecryptable(sourceOf(b), identity);
}

/** Which failure explains a broken read: the integrity check, then the tar, then age, then the decompressor; a stage torn down after another failed never. */
function rank(err: unknown): number {
  if (err instanceof IntegrityError) return 0;
  if (err instanceof TarMemberError) return 1;
  if (err instanceof ProcessError) return isSecondaryFailure(err) || err.signal === "SIGKILL" ? 9 : err.program === "age" ? 2 : 3;
  if (["ERR_STREAM_PREMATURE_CLOSE", "ERR_STREAM_DESTROYED", "EPIPE"].includes(errnoCode(err) ?? "")) return 9;
  return 4;
}

function explain(err: unknown, b: TrustedBase, identity: AgeIdentity | null): unknown {
  const use = "nothing of it was used; use another base backup";
  if (err instanceof IntegrityError) return new TaskError(ExitCode.refused, `${err.message}; ${use}`, { cause: err });
  if (err instanceof TarMemberError) return new TaskError(ExitCode.refused, `${b.name} is not a tar pg_basebackup wrote: ${err.message}; refused before that member was written, ${use}`, { cause: err });
  const decrypt = decryptionProblem(sourceOf(b), identity, err);
  if (decrypt !== null) return new TaskError(ExitCode.refused, decrypt, { cause: err });
  if (err instanceof ProcessError) return new TaskError(ExitCode.refused, `${b.name} does not decompress (${err.message}); ${use}`, { cause: err });
  return err;
}

async function* paced(stream: Readable, afterChunk: (index: number) => Promise<void>): AsyncGenerator<Buffer> {
  let i = 0;
  for await (const chunk of stream) {
    yield chunk as Buffer;
    await afterChunk(++i);
  }
}

/** Reads `b` once into the existing empty folder `into`; throws a TaskError (exit 4) when anything in it is refused. */
export async function extractBase(b: TrustedBase, into: string, o: BaseReadOptions): Promise<ExtractedBase> {
  assertBaseDecryptable(b, o.identity);
  const read = openVerified(b.path, b.expect);
  const source: Readable | AsyncIterable<Buffer> = o.afterChunk === undefined ? read.stream : paced(read.stream, o.afterChunk);
  const decryptor = b.manifest.encryption !== undefined && o.identity !== null ? decryptorFor(o.identity, o.env) : null;
  const programs = [decryptor, decompressorFor(b.manifest.compression.codec, o.threads, o.env)].filter((p): p is Program => p !== null);
  o.log.info({ backup: b.name, verification: read.verification, filters: programs.map((p) => p.label) }, `reading ${b.name} (${read.verification === "chunks" ? "each chunk checked before it is used" : "whole-file sha256 checked at its end"})`);
  if (programs.length === 0) {
    try {
      const x = await extractTar(source, into, o.log);
      return { ...x, verification: read.verification, storedBytes: read.bytesRead() };
    } catch (err) {
      read.stream.destroy();
      throw explain(err, b, o.identity);
    }
  }
  const links: ChainLink[] = programs.map((p) => ({ program: p.program, args: p.args, env: filterEnv(o.env) }));
  const chain = startChain(links, "pipe");
  let extracted: Extracted | null = null;
  const stages: Promise<unknown>[] = [
    pipeline(source, chain.stdin as Writable),
    ...chain.children.map((c) => c.done),
    extractTar(chain.stdout, into, o.log).then((x) => (extracted = x)),
  ];
  const { errors } = await settleStages(stages, () => {
    read.stream.destroy();
    chain.kill();
    chain.stdout.destroy();
  });
  if (errors.length > 0) throw explain(errors.sort((x, y) => rank(x) - rank(y))[0], b, o.identity);
  return { ...(extracted as unknown as Extracted), verification: read.verification, storedBytes: read.bytesRead() };
}
