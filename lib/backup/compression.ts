// Compressors are external programs so they run on other cores than Node. For .bz2 a
// parallel implementation (lbzip2, then pbzip2) is used when installed: same format,
// readable by stock bunzip2, several times faster than the seed's single-threaded bzip2.
import type { Codec } from "../core/codec.js";
import { which } from "../core/bin.js";
import type { Program } from "../core/proc.js";

export type { Program } from "../core/proc.js";

/** What a compressor or decompressor needs of the environment: it only moves bytes. */
const FILTER_ENV = ["PATH", "LANG", "LC_ALL", "TMPDIR"];

/**
 * The environment for a compressor or decompressor: PATH and the locale, nothing else. The
 * callers' env carries PGPASSWORD and the other libpq variables for pg_dump/psql; a filter
 * program has no use for them, and GZIP, BZIP2 or ZSTD_CLEVEL would change its output.
 */
export function filterEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const key of FILTER_ENV) if (env[key] !== undefined) out[key] = env[key];
  return out;
}

function pick(candidates: string[], env: NodeJS.ProcessEnv): string | null {
  for (const c of candidates) if (which(c, env) !== null) return c;
  return null;
}

function missing(codec: Codec, programs: string[]): Error {
  return new Error(`BACKUP_COMPRESSION=${codec} needs ${programs.join(" or ")} on PATH; install it or choose another codec`);
}

/** The compressor for a codec, or null for "none". Throws when no program for the codec is installed. */
export function compressorFor(codec: Codec, level: number | null, threads: number, env: NodeJS.ProcessEnv): Program | null {
  const lv = level === null ? [] : [`-${level}`];
  let args: string[];
  let program: string | null;
  switch (codec) {
    case "none":
      return null;
    case "bzip2":
      program = pick(["lbzip2", "pbzip2", "bzip2"], env);
      if (program === null) throw missing(codec, ["lbzip2", "pbzip2", "bzip2"]);
      args = program === "lbzip2" ? ["-n", String(threads), ...lv, "-c"] : program === "pbzip2" ? [`-p${threads}`, ...lv, "-c"] : [...lv, "-c"];
      break;
    case "zstd":
      program = pick(["zstd"], env);
      if (program === null) throw missing(codec, ["zstd"]);
      args = ["-q", "-c", `-T${threads}`, ...lv];
      break;
    case "gzip":
      program = pick(["pigz", "gzip"], env);
      if (program === null) throw missing(codec, ["pigz", "gzip"]);
      args = program === "pigz" ? ["-p", String(threads), ...lv, "-c"] : [...lv, "-c"];
      break;
  }
  return { program, args, label: [program, ...args.filter((a) => a !== "-c" && a !== "-q")].join(" ") };
}

/** The decompressor for a codec (stdin -> stdout), or null for "none". */
export function decompressorFor(codec: Codec, threads: number, env: NodeJS.ProcessEnv): Program | null {
  let program: string | null;
  let args: string[];
  switch (codec) {
    case "none":
      return null;
    case "bzip2":
      program = pick(["lbzip2", "pbzip2", "bzip2"], env);
      if (program === null) throw missing(codec, ["lbzip2", "pbzip2", "bzip2"]);
      args = program === "lbzip2" ? ["-d", "-n", String(threads), "-c"] : program === "pbzip2" ? ["-d", `-p${threads}`, "-c"] : ["-d", "-c"];
      break;
    case "zstd":
      program = pick(["zstd"], env);
      if (program === null) throw missing(codec, ["zstd"]);
      args = ["-d", "-q", "-c", `-T${threads}`];
      break;
    case "gzip":
      program = pick(["pigz", "gzip"], env);
      if (program === null) throw missing(codec, ["pigz", "gzip"]);
      args = ["-d", "-c"];
      break;
  }
  return { program, args, label: [program, ...args].join(" ") };
}
