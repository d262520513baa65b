// Prepares one database's section for psql, which runs restricted (lib/restore/psql.ts) and so
// can run no meta-command of the file: the tool makes every connection itself.
// - Each `\connect` line pg_dump wrote (to the section's own database, at a statement boundary)
//   becomes a RECONNECT piece: the job ends the psql it feeds and starts a new one connected to
//   the database being restored. pg_dump reconnects after CREATE DATABASE and again after the
//   database's properties (ALTER DATABASE … SET), so that they apply to the rest of the section.
// - pg_dump's own `\restrict KEY` / `\unrestrict KEY` lines around each `\connect`, and the
//   `\encoding SQL_ASCII` before a connection-string `\connect`, are dropped (the key is in
//   the file, so a forger could lift it; ours is not).
// - With a temporary name (`to`), the database is pointed at it, so a restore never builds a
//   half-restored database under the real name (lib/restore/exec.ts renames it into place):
//   pg_dump --create names the database in CREATE DATABASE, ALTER DATABASE (owner, properties),
//   COMMENT/SECURITY LABEL/GRANT/REVOKE … ON DATABASE and ALTER ROLE … IN DATABASE; exactly
//   those, found at statement starts by lib/sql/scanner.ts, are rewritten.
// Everything else passes through byte for byte, any other meta-command included (psql refuses
// it), with the line count unchanged. This is no security boundary: psql's own restricted mode
// is. It is what lets a genuine pg_dump section restore under another name.
import { IDENT, identName, latin1Of, quoteIdent } from "../sql/ident.js";
import type { ScanState } from "../sql/scanner.js";
import { inCopy, isCopyEnd, newScanState, scanLine } from "../sql/scanner.js";

/** Statement forms naming a database; the last group is the database. */
const FORMS = [
  String.raw`CREATE\s+DATABASE\s+(${IDENT})`,
  String.raw`ALTER\s+DATABASE\s+(${IDENT})`,
  String.raw`COMMENT\s+ON\s+DATABASE\s+(${IDENT})`,
  String.raw`SECURITY\s+LABEL\s+(?:FOR\s+${IDENT}\s+)?ON\s+DATABASE\s+(${IDENT})`,
  String.raw`(?:GRANT|REVOKE)\s[^;'"]*?\bON\s+DATABASE\s+(${IDENT})`,
  String.raw`ALTER\s+(?:ROLE|USER)\s+${IDENT}\s+IN\s+DATABASE\s+(${IDENT})`,
].map((src) => new RegExp(`^${src}`, "id"));
const INTERESTING = /^(?:CREATE|ALTER|GRANT|REVOKE|COMMENT|SECURITY)\b/i;
/** What pg_dump puts before a section's first \connect besides database-level statements. */
const PREAMBLE = /^(?:SET\s|SELECT\s+pg_catalog\.set_config\()/i;
const CONNECT = /^\\(?:c|connect)(?=\s|$)/;
/** pg_dump's keyed lines (13.22, 14.19, 15.14, 16.10, 17.6 on) and the \encoding it writes before a connection-string \connect. */
const DROPPED_META = /^\\(?:(?:restrict|unrestrict) [A-Za-z0-9]+|encoding SQL_ASCII)[ \t\r]*$/;

/** The section is not what pg_dump writes (a statement before its \\connect, a \\connect elsewhere, …): the file was altered. */
export class SectionRefusal extends Error {
  override name = "SectionRefusal";
}

/** Where the section's psql must end and a new one connect to the database being restored. */
export const RECONNECT = Symbol("reconnect");
export type Piece = Buffer | typeof RECONNECT;
/** Statements longer than this are never database-level ones; they stream instead of being held. */
const MAX_HELD = 1 << 20;
/** How much of a held statement the database-level forms are matched against (names are at most 63 bytes). */
const WINDOW = 64 * 1024;
/** A line is scanned whole; past this (far above the longest real one, a function body) the section is refused. */
export const MAX_LINE = 1 << 30;

/**
 * Where the database name is in a statement (latin1 text), or null when the statement does
 * not name a database. A CREATE DATABASE of another name is refused: it would mean the
 * section is not the one we think.
 */
export function databaseSpan(stmt: string, from: string): { start: number; end: number; ours: boolean; create: boolean } | null {
  for (const [i, form] of FORMS.entries()) {
    const m = form.exec(stmt);
    const span = m?.indices?.[1];
    if (m === null || span === undefined) continue;
    const name = identName(m[1] as string);
    if (i === 0 && name !== from) {
      throw new SectionRefusal(`the section of database ${JSON.stringify(from)} creates database ${JSON.stringify(name)}`);
    }
    return { start: span[0], end: span[1], ours: name === from, create: i === 0 };
  }
  return null;
}

function unquote(token: string): string {
  if (token.startsWith('"')) return token.slice(1, -1).replace(/""/g, '"');
  if (token.startsWith("'")) return token.slice(1, -1).replace(/\\(.)/g, "$1");
  return token;
}

/** The database a `\connect` line (latin1, without its newline) names, as pg_dump's appendPsqlMetaConnect prints it. */
export function connectTarget(meta: string): string | null {
  const args = meta.replace(CONNECT, "").match(/"(?:[^"]|"")*"|'(?:[^'\\]|\\.)*'|\S+/g) ?? [];
  const first = args.map(unquote).find((a) => !a.startsWith("-"));
  if (first === undefined) return null;
  let name = first;
  if (first.includes("=")) {
    const m = /(?:^|\s)dbname\s*=\s*('(?:[^'\\]|\\.)*'|\S+)/.exec(first);
    if (m === null) return null;
    name = unquote(m[1] as string);
  }
  return Buffer.from(name, "latin1").toString("utf8");
}

export class SectionRetargeter {
  private readonly st: ScanState = newScanState();
  /** The start of a line not yet ended, in the pieces it came in: joined once, when its newline comes. */
  private carry: Buffer[] = [];
  private carryBytes = 0;
  /** Inside a COPY data line that is not the end marker: pass bytes on up to its newline. */
  private dataLine = false;
  private held: Buffer[] = [];
  private heldBytes = 0;
  private points: { pos: number; meta: boolean }[] = [];
  /** A statement too long to hold is streaming until it ends. */
  private streaming = false;
  /** \connect lines met so far; the first one ends the preamble. */
  connects = 0;

  /**
   * @param to the temporary database to point the section at, or null to keep its names (a
   * template1/postgres section restored in place).
   * @param mark a statement put on the CREATE DATABASE line, after it (same line, so psql's
   * line numbers stay section lines): marks the temporary database as ours the moment it exists.
   */
  constructor(
    private readonly from: string,
    private readonly to: string | null,
    private readonly mark: string | null = null,
  ) {
    // Temporary names are plain ASCII words, so the statements naming them need no care.
    if (to !== null && !/^[a-z0-9_]+$/.test(to)) throw new Error(`temporary database name ${JSON.stringify(to)} is not a plain word`);
  }

  /** The pieces to pass on for this chunk (the chunk is not mutated; output may alias it). */
  push(chunk: Buffer): Piece[] {
    const out: Piece[] = [];
    // Outside COPY data a line is only scanned once whole; pieces of a long one wait unjoined.
    if (this.carryBytes > 0 && !inCopy(this.st) && chunk.indexOf(0x0a) < 0) {
      this.keep(chunk);
      return out;
    }
    const data = this.carryBytes === 0 ? chunk : Buffer.concat([...this.carry, chunk]);
    [this.carry, this.carryBytes] = [[], 0];
    let pos = 0;
    while (pos < data.length) {
      if (this.dataLine || (inCopy(this.st) && !isCopyEnd(data.subarray(pos, pos + 3)))) {
        pos = this.skipData(data, pos, out);
        continue;
      }
      const nl = data.indexOf(0x0a, pos);
      if (nl < 0) {
        this.keep(data.subarray(pos));
        break;
      }
      this.line(data.subarray(pos, nl + 1), out);
      pos = nl + 1;
    }
    return out;
  }

  /** The rest of the stream; throws when the section never connected to its database. */
  end(): Piece[] {
    const out: Piece[] = [];
    if (this.carryBytes > 0) this.line(Buffer.concat(this.carry), out);
    [this.carry, this.carryBytes] = [[], 0];
    if (this.held.length > 0) out.push(...this.release());
    if (this.connects === 0) throw new SectionRefusal(`the section of database ${JSON.stringify(this.from)} has no \\connect line`);
    return out;
  }

  private keep(piece: Buffer): void {
    this.carryBytes += piece.length;
    if (this.carryBytes > MAX_LINE) {
      throw new SectionRefusal(`the section of database ${JSON.stringify(this.from)} has a line longer than ${MAX_LINE} bytes outside COPY data, the most a restore scans as one line`);
    }
    this.carry.push(piece);
  }

  /** Passes COPY data on without splitting it into lines; stops at the `\.` line. */
  private skipData(data: Buffer, pos: number, out: Piece[]): number {
    if (this.dataLine) {
      const nl = data.indexOf(0x0a, pos);
      const end = nl < 0 ? data.length : nl + 1;
      out.push(data.subarray(pos, end));
      this.dataLine = nl < 0;
      return end;
    }
    const marker = data.indexOf("\n\\.\n", pos);
    if (marker >= 0) {
      out.push(data.subarray(pos, marker + 1));
      return marker + 1;
    }
    const last = data.lastIndexOf(0x0a);
    const tailStart = last >= pos ? last + 1 : pos;
    if (tailStart > pos) out.push(data.subarray(pos, tailStart));
    const tail = data.subarray(tailStart);
    if (tail.length > 0 && tail.length < 3 && Buffer.from("\\.").subarray(0, tail.length).equals(tail)) {
      [this.carry, this.carryBytes] = [[tail], tail.length];
    } else if (tail.length > 0) {
      out.push(tail);
      this.dataLine = true;
    }
    return data.length;
  }

  private line(line: Buffer, out: Piece[]): void {
    const offset = this.heldBytes;
    const points: { pos: number; meta: boolean }[] = [];
    scanLine(line, this.st, {
      start: (p) => {
        const head = line.toString("latin1", p, p + 64);
        if (INTERESTING.test(head)) points.push({ pos: offset + p, meta: false });
        else if (this.connects === 0 && !PREAMBLE.test(head)) {
          throw new SectionRefusal(`the section of database ${JSON.stringify(this.from)} runs statements before its \\connect line: ${head.split("\n")[0]}`);
        }
      },
      meta: (p) => {
        // Only a meta-command alone on its line, between statements, is pg_dump's; psql refuses any other.
        if (p !== 0 || !this.st.atStart) return;
        const text = line.toString("latin1", 0, Math.min(line.length, 256)).replace(/\n$/, "");
        if (CONNECT.test(text) || DROPPED_META.test(text)) points.push({ pos: offset, meta: true });
      },
    });
    if (this.streaming || (this.held.length === 0 && points.length === 0)) {
      out.push(line);
      if (this.st.atStart) this.streaming = false;
      return;
    }
    this.held.push(line);
    this.heldBytes += line.length;
    this.points.push(...points);
    if (this.st.atStart) out.push(...this.release());
    else if (this.heldBytes > MAX_HELD) {
      out.push(...this.release());
      this.streaming = true;
    }
  }

  /** The held lines with their database-level statements pointed at the temporary database, keyed lines dropped, and a RECONNECT for each \connect. */
  private release(): Piece[] {
    const data = this.held.length === 1 ? (this.held[0] as Buffer) : Buffer.concat(this.held);
    const edits: { start: number; end: number; text: string; reconnect?: true }[] = [];
    for (const { pos, meta } of this.points) {
      const rest = data.toString("latin1", pos, pos + WINDOW);
      if (meta) {
        const line = rest.split("\n", 1)[0] as string;
        if (CONNECT.test(line)) {
          const target = connectTarget(line);
          if (target !== this.from) {
            throw new SectionRefusal(`the section of database ${JSON.stringify(this.from)} connects to ${JSON.stringify(target)}: ${line}`);
          }
          this.connects++;
          edits.push({ start: pos, end: pos + line.length, text: "", reconnect: true });
        } else {
          edits.push({ start: pos, end: pos + line.length, text: "" });
        }
        continue;
      }
      const span = databaseSpan(rest, this.from);
      if (span === null && this.connects === 0) {
        throw new SectionRefusal(`the section of database ${JSON.stringify(this.from)} runs statements before its \\connect line: ${rest.split("\n", 1)[0]}`);
      }
      if (span?.ours === true && this.to !== null) edits.push({ start: pos + span.start, end: pos + span.end, text: latin1Of(quoteIdent(this.to)) });
      if (span?.create === true && this.mark !== null) {
        const eol = data.indexOf(0x0a, pos + span.end);
        const end = eol < 0 ? data.length : eol;
        // pg_dump writes CREATE DATABASE on one line; anything else is not a section we know how to mark.
        if (!data.toString("latin1", pos, end).trimEnd().endsWith(";")) {
          throw new SectionRefusal(`the section of database ${JSON.stringify(this.from)} has a CREATE DATABASE statement that does not end on its line`);
        }
        edits.push({ start: end, end, text: ` ${this.mark}` });
      }
    }
    [this.held, this.heldBytes, this.points] = [[], 0, []];
    if (edits.length === 0) return [data];
    const parts: Piece[] = [];
    let at = 0;
    let text: Buffer[] = [];
    for (const e of edits.sort((a, b) => a.start - b.start)) {
      text.push(data.subarray(at, e.start), Buffer.from(e.text, "latin1"));
      at = e.end;
      if (e.reconnect === true) {
        parts.push(Buffer.concat(text), RECONNECT);
        text = [];
      }
    }
    text.push(data.subarray(at));
    parts.push(Buffer.concat(text));
    return parts.filter((p) => p === RECONNECT || p.length > 0);
  }
}
