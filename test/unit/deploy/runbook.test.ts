// docs/runbook.md is executed by the e2e (test/e2e/runbook.sh runs each ```sh runbook:ID block as it
// stands on the page); this test holds the page and the e2e to each other without an engine: every
// block is run by a scenario and every block a scenario runs is on the page, each variable a block
// uses is set on the page before it, every make target exists, the blocks pass shellcheck, and the
// links go to the docs pages.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const PAGE = "docs/runbook.md";
const text = readFileSync(join(ROOT, PAGE), "utf8");

interface Block {
  /** The fence's info string, e.g. "sh runbook:db-dropped". */
  info: string;
  body: string;
  /** Index of the block's opening fence in the page. */
  at: number;
}

function blocks(): Block[] {
  const out: Block[] = [];
  const re = /^```([^\n`]*)\n([\s\S]*?)^```[ \t]*$/gm;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) out.push({ info: m[1]!.trim(), body: m[2]!, at: m.index });
  return out;
}

const all = blocks();
const tagged = (kind: string) => all.flatMap((b) => (b.info.startsWith(`${kind}:`) ? [{ ...b, id: b.info.slice(kind.length + 1) }] : []));
const runs = tagged("sh runbook");
const expects = tagged("text runbook-expect");
const untested = tagged("sh runbook-untested");

const e2eDir = join(ROOT, "test/e2e");
const e2e = readdirSync(e2eDir)
  .filter((f) => f.endsWith(".sh"))
  .map((f) => readFileSync(join(e2eDir, f), "utf8"))
  .join("\n");
const e2eRuns = [...e2e.matchAll(/\brunbook_run ([a-z0-9-]+)/g)].map((m) => m[1]!);

/** Names a shell text assigns: NAME=… at a command's start, after export, or in a list after export. */
function assigned(body: string): Set<string> {
  const names = new Set<string>();
  for (const line of body.split("\n")) {
    const m = /^\s*(export\s+)?(.*)$/.exec(line)!;
    const words = m[1] ? m[2]!.split(/\s+/) : [m[2]!.split(/\s+/)[0] ?? ""];
    for (const w of words) {
      const a = /^([A-Za-z_][A-Za-z0-9_]*)=/.exec(w);
      if (a) names.add(a[1]!);
      else if (m[1]) break;
    }
  }
  return names;
}

/** Variables a shell text expands: $NAME and ${NAME…}. */
function used(body: string): Set<string> {
  return new Set([...body.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!));
}

describe("docs/runbook.md and the e2e that runs it", () => {
  it("has the situations of issue 26, each with blocks the e2e runs", () => {
    for (const h of ["A wiped cluster", "When auto-restore refused", "One database dropped by mistake", "Restore to a time", "The storage box lost", "A backup job failing", "A lock held", "Keys rotated"]) {
      expect(text, `a section "${h}"`).toMatch(new RegExp(`^#{2,3} ${h}$`, "m"));
    }
    expect(runs.length).toBeGreaterThanOrEqual(12);
  });

  it("names each block once", () => {
    const ids = [...runs, ...untested].map((b) => b.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(new Set(expects.map((b) => b.id)).size).toBe(expects.length);
  });

  it("has every runbook:ID block run by a scenario, and every block a scenario runs on the page", () => {
    expect([...new Set(e2eRuns)].sort()).toEqual(runs.map((b) => b.id).sort());
  });

  it("shows what to see only for blocks that exist, after them", () => {
    for (const e of expects) {
      const run = runs.find((b) => b.id === e.id);
      expect(run, `runbook-expect:${e.id} has no runbook:${e.id}`).toBeDefined();
      expect(e.at).toBeGreaterThan(run!.at);
      expect(e.body.trim()).not.toBe("");
    }
  });

  it("says of each block the e2e does not run that it does not", () => {
    for (const u of untested) {
      const before = text.slice(Math.max(0, u.at - 400), u.at);
      expect(before, `runbook-untested:${u.id}`).toMatch(/not run by the e2e/);
    }
  });

  it("sets every variable a block uses on the page before it (the operator's settings)", () => {
    const settings = all.filter((b) => b.info === "sh");
    for (const b of [...runs, ...untested]) {
      const before = new Set(settings.filter((s) => s.at < b.at).flatMap((s) => [...assigned(s.body)]));
      const own = assigned(b.body);
      const missing = [...used(b.body)].filter((v) => !own.has(v) && !before.has(v));
      expect(missing, `variables of runbook:${b.id} set nowhere before it`).toEqual([]);
    }
  });

  it("runs only make targets the Makefile has", () => {
    const makefile = readFileSync(join(ROOT, "Makefile"), "utf8");
    const targets = new Set([...makefile.matchAll(/^([a-z0-9-]+):/gm)].map((m) => m[1]!));
    for (const b of [...runs, ...untested]) {
      for (const m of b.body.matchAll(/\bmake ((?:[A-Z_]+=\S+ )*)([a-z][a-z0-9-]*)/g)) expect(targets, `make ${m[2]} in runbook:${b.id}`).toContain(m[2]);
    }
  });

  it("has blocks that pass shellcheck", () => {
    for (const b of [...runs, ...untested]) {
      // The settings come from the blocks before (checked above), so SC2154 (unassigned) is off here.
      const script = `# shellcheck shell=bash disable=SC2154\nset -euo pipefail\n${b.body}`;
      try {
        execFileSync("shellcheck", ["-"], { input: script, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] });
      } catch (err) {
        expect.fail(`runbook:${b.id} fails shellcheck:\n${(err as { stdout?: string }).stdout ?? String(err)}`);
      }
    }
  });

  it("links only to the docs pages and the README", () => {
    const pages = ["architecture", "backups", "cli", "configuration", "deploy", "monitoring", "performance", "pitr", "restore", "s3", "security", "testing"];
    const links = [...text.matchAll(/\]\(([^)]+)\)/g)].map((m) => m[1]!).filter((l) => !/^https?:/.test(l));
    expect(links.length).toBeGreaterThan(0);
    for (const l of links) {
      const file = l.split("#")[0]!;
      expect([...pages.map((p) => `${p}.md`), "../README.md"], `link ${l}`).toContain(file);
    }
  });
});
