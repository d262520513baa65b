// A script refused before psql could run it: the line, what was found, and why.

export class ScriptRefusal extends Error {
  constructor(
    readonly line: number,
    /** What was found, e.g. `\! id`; control bytes escaped, cut at 80 characters. */
    readonly found: string,
    readonly reason: string,
  ) {
    super(`line ${line}: ${reason}: ${found}`);
    this.name = "ScriptRefusal";
  }
}

export function printable(text: string): string {
  const cut = text.length > 80 ? `${text.slice(0, 80)}…` : text;
  let out = "";
  for (const c of cut) {
    const code = c.charCodeAt(0);
    out += code < 0x20 || code === 0x7f ? `\\x${code.toString(16).padStart(2, "0")}` : c;
  }
  return out;
}
