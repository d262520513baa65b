// The configuration a restored data directory brings along, read from the folder the tar reader
// just wrote (nothing else writes there): pg_basebackup copies every file of the data directory
// but a few runtime ones, so postgresql.conf (when the server kept it there, as initdb and the
// official image do), postgresql.auto.conf (always), and whatever they include from inside the
// data directory are in the tar. An include of a path outside the data directory is itself
// reported: the backup does not hold that file, and whoever can write it at the restore's host
// would choose the settings. The files are read in the server's order, at most 1 MiB each, 10
// levels deep and 100 files in all, never through a symlink.
import { constants } from "node:fs";
import { open, readdir } from "node:fs/promises";
import { dirname, isAbsolute, join, normalize, relative } from "node:path";
import { errnoCode } from "../core/errors.js";
import type { OwnSettings, RiskySetting } from "./commandSettings.js";
import { parseConf, riskySettings } from "./commandSettings.js";

const MAX_FILE_BYTES = 1 << 20;
const MAX_DEPTH = 10;
const MAX_FILES = 100;
export const CONFIG_ROOTS = ["postgresql.conf", "postgresql.auto.conf"] as const;

/** A file's text, null when it does not exist; a non-regular file or one over the cap is reported by the caller. */
async function readConf(path: string): Promise<string | null | "not-a-file" | "too-large"> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return null;
    if (errnoCode(err) === "ELOOP") return "not-a-file";
    throw err;
  }
  try {
    const info = await fh.stat();
    if (!info.isFile()) return "not-a-file";
    if (info.size > MAX_FILE_BYTES) return "too-large";
    const buf = Buffer.alloc(info.size);
    const { bytesRead } = await fh.read(buf, 0, info.size, 0);
    return buf.subarray(0, bytesRead).toString("utf8");
  } finally {
    await fh.close();
  }
}

/** Every risky setting (commandSettings.ts) in the configuration files of `dataDir`, and the files read. */
export async function riskyServerSettings(dataDir: string, own: OwnSettings): Promise<{ findings: RiskySetting[]; files: string[] }> {
  const findings: RiskySetting[] = [];
  const files: string[] = [];
  const flag = (file: string, line: number, name: string, value: string, why: string): void => {
    findings.push({ file, line, name, value, why });
  };
  const visit = async (rel: string, depth: number): Promise<void> => {
    if (files.length >= MAX_FILES) return flag(rel, 0, "include", rel, `one of more than ${MAX_FILES} configuration files, which this check does not read`);
    const text = await readConf(join(dataDir, rel));
    if (text === null) return;
    if (text === "not-a-file" || text === "too-large") return flag(rel, 0, "include", rel, text === "too-large" ? `a configuration file over ${MAX_FILE_BYTES} bytes, which this check does not read` : "not a regular file");
    files.push(rel);
    const conf = parseConf(text);
    findings.push(...riskySettings(rel, conf, own));
    for (const inc of conf.includes) {
      const target = isAbsolute(inc.path) ? inc.path : normalize(join(dataDir, dirname(rel), inc.path));
      const inside = relative(dataDir, target);
      if (inside === "" || inside.startsWith("..") || isAbsolute(inside)) {
        flag(rel, inc.line, inc.kind, inc.path, "includes configuration from outside the data directory, which the base backup does not hold");
        continue;
      }
      if (depth >= MAX_DEPTH) {
        flag(rel, inc.line, inc.kind, inc.path, `an include nested deeper than ${MAX_DEPTH} levels`);
        continue;
      }
      if (inc.kind !== "include_dir") {
        await visit(inside, depth + 1);
        continue;
      }
      const entries = await readdir(target, { withFileTypes: true }).catch(() => []);
      for (const e of entries.filter((d) => d.isFile() && d.name.endsWith(".conf") && !d.name.startsWith(".")).map((d) => d.name).sort()) {
        await visit(join(inside, e), depth + 1);
      }
    }
  };
  for (const root of CONFIG_ROOTS) await visit(root, 0);
  return { findings, files };
}
