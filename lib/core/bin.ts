// Locating external programs. PostgreSQL server binaries live outside PATH on Debian
// (/usr/lib/postgresql/<major>/bin); we never hard-code a major version.
import { accessSync, constants, readdirSync } from "node:fs";
import { delimiter, join } from "node:path";

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Full path of `name` on PATH (from `env`), or null. */
export function which(name: string, env: NodeJS.ProcessEnv = process.env): string | null {
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (dir !== "" && isExecutable(join(dir, name))) return join(dir, name);
  }
  return null;
}

/**
 * Directories that may hold PostgreSQL server binaries, newest major first:
 * PG_BINDIR when set, then /usr/lib/postgresql/<major>/bin, then Alpine's /usr/libexec/postgresqlNN, /usr/bin.
 */
export function serverBinDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const dirs: string[] = [];
  if (env.PG_BINDIR) dirs.push(env.PG_BINDIR);
  const debianRoot = "/usr/lib/postgresql";
  try {
    const majors = readdirSync(debianRoot).filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a));
    for (const m of majors) dirs.push(join(debianRoot, m, "bin"));
  } catch {
    // not Debian
  }
  try {
    const alpine = readdirSync("/usr/libexec").filter((d) => /^postgresql\d+$/.test(d)).sort().reverse();
    for (const d of alpine) dirs.push(join("/usr/libexec", d));
  } catch {
    // not Alpine
  }
  dirs.push("/usr/bin", "/usr/local/bin");
  return dirs;
}

/** Path of a PostgreSQL server program (initdb, pg_ctl, postgres), or null. */
export function findServerBinary(name: string, env: NodeJS.ProcessEnv = process.env): string | null {
  for (const dir of serverBinDirs(env)) {
    if (isExecutable(join(dir, name))) return join(dir, name);
  }
  return which(name, env);
}
