// Which server settings in a restored cluster's configuration run commands, load code or send
// the server to files outside its data directory: a forged base backup could set them in
// postgresql.auto.conf (always read, last) or postgresql.conf (read unless the server is started
// with another config_file) and they would act when postgres starts, archives or recovers.
// Pure: restore-pitr lists what it finds (lib/pitr/configCheck.ts reads the files) and refuses
// an unsigned base backup that has any, unless --trust-unsigned.
// The lines are read the way the server's own lexer reads them where it matters: a name is
// case-insensitive and followed by "=" or blanks, a value may be quoted ('…', '' for a quote) or
// not, "#" starts a comment. A line this parser cannot read but whose first word is a risky
// name still counts, so a quirk of the server's grammar cannot hide one.

export interface ConfLine {
  line: number;
  /** Lower case. */
  name: string;
  value: string;
}

export interface Include {
  line: number;
  kind: "include" | "include_if_exists" | "include_dir";
  path: string;
}

export interface ParsedConf {
  settings: ConfLine[];
  includes: Include[];
}

/** Why each setting is risky; an empty value is harmless for all of them. */
export const RISKY_SETTINGS: Readonly<Record<string, string>> = {
  archive_command: "runs a shell command for every WAL segment",
  archive_cleanup_command: "runs a shell command at every restartpoint",
  recovery_end_command: "runs a shell command at the end of recovery",
  restore_command: "runs a shell command to fetch WAL",
  ssl_passphrase_command: "runs a shell command when the server starts",
  archive_library: "loads a library into the archiver",
  shared_preload_libraries: "loads libraries into the server when it starts",
  session_preload_libraries: "loads libraries into every session",
  local_preload_libraries: "loads libraries into every session",
  jit_provider: "loads a library for JIT compilation",
  dynamic_library_path: "changes where the server loads libraries from",
  hba_file: "reads the authentication rules from another file",
  ident_file: "reads the user name maps from another file",
  data_directory: "moves the server to another data directory",
  external_pid_file: "writes a file outside the data directory",
};

/** restore-pitr's own settings (lib/pitr/recoveryConf.ts), left in postgresql.auto.conf by an earlier restore; not reported. */
export interface OwnSettings {
  restoreCommand: string;
  recoveryEndCommand: string;
}

const LINE = /^\s*([A-Za-z_][A-Za-z0-9_$]*(?:\.[A-Za-z_][A-Za-z0-9_$]*)?)\s*=?\s*('(?:[^'\\]|''|\\.)*'|[^\s#']*)\s*(#.*)?$/;
const INCLUDES = new Set(["include", "include_if_exists", "include_dir"]);
const FIRST_WORD = /^\s*([A-Za-z_][A-Za-z0-9_$.]*)/;

function unquote(v: string): string {
  if (!v.startsWith("'")) return v;
  return v.slice(1, -1).replace(/''/g, "'").replace(/\\(.)/g, "$1");
}

/** The settings and include directives of one configuration file's text. */
export function parseConf(text: string): ParsedConf {
  const settings: ConfLine[] = [];
  const includes: Include[] = [];
  text.split(/\r?\n|\r/).forEach((raw, i) => {
    const line = i + 1;
    if (/^\s*(#.*)?$/.test(raw)) return;
    const m = LINE.exec(raw);
    if (m === null) {
      // Unreadable here: kept as a setting named by its first word, with the rest as its value (an include among them is reported).
      const first = FIRST_WORD.exec(raw);
      if (first !== null) settings.push({ line, name: (first[1] as string).toLowerCase(), value: raw.slice(first[0].length).trim() || "?" });
      return;
    }
    const name = (m[1] as string).toLowerCase();
    const value = unquote(m[2] ?? "");
    if (INCLUDES.has(name)) includes.push({ line, kind: name as Include["kind"], path: value });
    else settings.push({ line, name, value });
  });
  return { settings, includes };
}

export interface RiskySetting {
  file: string;
  line: number;
  name: string;
  value: string;
  why: string;
}

/** The risky settings of `file`'s parsed lines, restore-pitr's own left out. */
export function riskySettings(file: string, conf: ParsedConf, own: OwnSettings): RiskySetting[] {
  return conf.settings.flatMap((s) => {
    const why = RISKY_SETTINGS[s.name] ?? (INCLUDES.has(s.name) ? "an include directive this check cannot read" : undefined);
    if (why === undefined || s.value.trim() === "") return [];
    if (s.name === "restore_command" && s.value === own.restoreCommand) return [];
    if (s.name === "recovery_end_command" && s.value === own.recoveryEndCommand) return [];
    return [{ file, line: s.line, name: s.name, value: s.value, why }];
  });
}

/** One line per finding, for the refusal and the log: `postgresql.auto.conf:3 archive_command = 'curl …' (runs a shell command …)`. */
export function describeRisky(r: RiskySetting): string {
  const v = r.value.length > 80 ? `${r.value.slice(0, 77)}...` : r.value;
  return `${r.file}:${r.line} ${r.name} = ${JSON.stringify(v)} (${r.why})`;
}
