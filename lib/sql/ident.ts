// SQL identifiers: quoting for statements we build, and reading the identifiers pg_dump
// printed. Dump text is handled as latin1 strings (one char per byte) so rewriting it is
// byte-exact whatever the encoding; `latin1Of` maps a name into that form.

/** Always quoted, `"` doubled: safe for any name, including keywords, quotes and unicode. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A literal for a statement we build; standard_conforming_strings is on everywhere we run. */
export function quoteLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** A name as its UTF-8 bytes in a latin1 string, the form dump text is scanned in. */
export function latin1Of(name: string): string {
  return Buffer.from(name, "utf8").toString("latin1");
}

/** Source of a regular expression matching one identifier as pg_dump prints it (fmtId): quoted, or a bare lower-case word. */
export const IDENT = String.raw`(?:"(?:[^"]|"")*"|[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*)`;

/** The name an identifier matched by IDENT denotes (latin1 in, real string out). Bare words are folded to lower case as the server does. */
export function identName(token: string): string {
  const raw = token.startsWith('"') ? token.slice(1, -1).replace(/""/g, '"') : token.replace(/[A-Z]/g, (c) => c.toLowerCase());
  return Buffer.from(raw, "latin1").toString("utf8");
}
