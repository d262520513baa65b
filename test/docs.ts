// What the docs tests read: the environment variables the code reads (found in the source, not
// listed by hand), and the relative links of the Markdown pages.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(join(ROOT, path)).isDirectory()) return sourceFiles(path);
    return path.endsWith(".ts") ? [path] : [];
  });
}

const NAME = "[A-Z][A-Z0-9_]*[A-Z0-9]";
/** env.NAME, env?.NAME, process.env.NAME, someEnv.NAME — read, not assigned (a child's environment being built) */
const DOTTED = new RegExp(String.raw`\b(?:env|[a-z]\w*Env|process\.env)\??\.(${NAME})\b(?!\s*=[^=])`, "g");
/** env["NAME"] */
const INDEXED = new RegExp(String.raw`\b(?:env|[a-z]\w*Env)\[\s*"(${NAME})"\s*\]`, "g");
/** str(env, "NAME", …) and every helper that takes the environment first */
const HELPER = new RegExp(String.raw`\(\s*(?:env|[a-z]\w*Env)\s*,\s*"(${NAME})"`, "g");
/** readSecretFile("NAME_FILE", …): the variable whose file it reads */
const SECRET_FILE = new RegExp(String.raw`readSecretFile\(\s*"(${NAME})"`, "g");
/** A list of names looked up in the environment: ["A", "B"].find((n) => env[n] …) or .filter/.some/.map */
const NAME_LIST = new RegExp(String.raw`\[((?:\s*"${NAME}"\s*,?)+)\]\s*\.(?:find|filter|some|map|flatMap|forEach)\(\s*\(?(\w+)\)?\s*=>[^;]*\benv\[\s*\2\s*\]`, "g");
/** A helper that reads `${name}_FILE` beside `name`: function f(env: Env, name: string) { … `${name}_FILE` … } */
const WITH_FILE = /function (\w+)\(env: Env, name: string[^)]*\)[^{]*\{[^]*?`\$\{name\}_FILE`/g;

/** Every environment variable read by lib/ and tasks/, with a file that reads it. */
export function variablesReadByCode(): Map<string, string> {
  const found = new Map<string, string>();
  const add = (name: string, file: string) => void (found.has(name) || found.set(name, file));
  const files = [...sourceFiles("lib"), ...sourceFiles("tasks")];
  const texts = files.map((f) => ({ f, text: readFileSync(join(ROOT, f), "utf8") }));
  const fileHelpers = new Set(texts.flatMap(({ text }) => [...text.matchAll(WITH_FILE)].map((m) => m[1] as string)));
  for (const { f, text } of texts) {
    for (const re of [DOTTED, INDEXED, HELPER, SECRET_FILE]) for (const m of text.matchAll(re)) add(m[1] as string, f);
    for (const m of text.matchAll(NAME_LIST)) for (const n of (m[1] as string).matchAll(new RegExp(`"(${NAME})"`, "g"))) add(n[1] as string, f);
    for (const helper of fileHelpers) {
      for (const m of text.matchAll(new RegExp(String.raw`\b${helper}\(\s*env\s*,\s*"(${NAME})"`, "g"))) add(`${m[1] as string}_FILE`, f);
    }
  }
  return found;
}

/** The Markdown pages: README.md and every page under docs/. */
export function markdownPages(): string[] {
  const docs = (() => {
    try {
      return readdirSync(join(ROOT, "docs")).filter((n) => n.endsWith(".md")).map((n) => join("docs", n));
    } catch {
      return [];
    }
  })();
  return ["README.md", ...docs];
}

export { relative };

/** The anchor GitHub gives a heading: lower case, punctuation but - and _ dropped, spaces as -; a repeated one gets -1, -2 … */
export function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  let fence = false;
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) fence = !fence;
    const m = fence ? null : /^#{1,6} (.+)$/.exec(line);
    if (m === null) continue;
    const base = (m[1] as string).trim().toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, "").replace(/ /g, "-");
    let a = base;
    for (let n = 1; out.has(a); n++) a = `${base}-${n}`;
    out.add(a);
  }
  return out;
}

/** Every Markdown link of a page outside code: [text](target). */
export function links(markdown: string): string[] {
  const out: string[] = [];
  let fence = false;
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) fence = !fence;
    if (fence) continue;
    for (const m of line.replace(/`[^`]*`/g, "").matchAll(/\]\(([^)\s]+)\)/g)) out.push(m[1] as string);
  }
  return out;
}
