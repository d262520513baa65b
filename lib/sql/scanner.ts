// Finds where statements and psql meta-commands start in psql input (pg_dump and
// pg_dumpall output), one line at a time, so that rewriting a statement can never touch a
// string, a quoted identifier, a function body, a comment or COPY data that merely looks
// like one. It follows the lexical rules psql itself uses to split its input:
// '…' ('' doubled; E'…' with backslash escapes), "…" ("" doubled), $tag$…$tag$, -- and
// nested /* */ comments, a backslash outside quotes starting a meta-command that runs to
// the end of the line, and the data lines after `COPY … FROM stdin;` up to `\.`.
// A ';' inside parentheses (CREATE RULE … DO (…; …), BEGIN ATOMIC bodies) is taken as a
// statement end too; what follows it there is DML, which never matches a rewrite rule.

type Mode = "normal" | "quote" | "escapeQuote" | "doubleQuote" | "dollar" | "block" | "copy";

export interface ScanState {
  mode: Mode;
  /** Closing delimiter while in a dollar quote, e.g. "$_$". */
  tag: Buffer;
  depth: number;
  /** No statement text since the last ';' (or the beginning). */
  atStart: boolean;
  /** The open statement began with COPY: its ';' after "FROM stdin" starts data lines. */
  copy: boolean;
  /** The line being scanned ends a COPY statement; data begins on the next line. */
  copyNext: boolean;
}

export interface LineEvents {
  /** A statement begins at `pos` of the line. */
  start?(pos: number): void;
  /** The open statement ends with the ';' at `pos`. */
  end?(pos: number): void;
  /** A meta-command (\connect, \restrict …) runs from `pos` to the end of the line. */
  meta?(pos: number): void;
}

export function newScanState(): ScanState {
  return { mode: "normal", tag: Buffer.alloc(0), depth: 0, atStart: true, copy: false, copyNext: false };
}

const SPACE = new Set([0x20, 0x09, 0x0a, 0x0d, 0x0c]);
const FROM_STDIN = Buffer.from("FROM stdin");
const COPY_END = Buffer.from("\\.");

function isIdentByte(b: number | undefined): boolean {
  if (b === undefined) return false;
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x5f || b === 0x24 || b >= 0x80;
}

/** The "$tag$" opening a dollar quote at `pos`, or null ($1 parameters and identifiers with $ are not quotes). */
function dollarTag(line: Buffer, pos: number): Buffer | null {
  if (isIdentByte(line[pos - 1])) return null;
  let i = pos + 1;
  const first = line[i];
  if (first !== undefined && first !== 0x24 && (!isIdentByte(first) || (first >= 0x30 && first <= 0x39))) return null;
  while (i < line.length && line[i] !== 0x24) {
    if (!isIdentByte(line[i])) return null;
    i++;
  }
  return i < line.length ? line.subarray(pos, i + 1) : null;
}

/** Whether the line (with or without its newline) is COPY's end marker `\.`. */
export function isCopyEnd(line: Buffer): boolean {
  const n = line[line.length - 1] === 0x0a ? line.length - 1 : line.length;
  return n === 2 && COPY_END.compare(line, 0, 2) === 0;
}

/** Scans one whole line (with its newline) and advances `st`; events report positions in `line`. */
export function scanLine(line: Buffer, st: ScanState, ev: LineEvents = {}): void {
  if (st.copyNext) {
    st.copyNext = false;
    st.mode = "copy";
  }
  if (st.mode === "copy") {
    if (isCopyEnd(line)) st.mode = "normal";
    return;
  }
  let i = 0;
  while (i < line.length) {
    const b = line[i] as number;
    switch (st.mode) {
      case "quote":
      case "doubleQuote": {
        const q: number = st.mode === "quote" ? 0x27 : 0x22;
        const at: number = line.indexOf(q, i);
        if (at < 0) return;
        if (line[at + 1] === q) i = at + 2;
        else [st.mode, i] = ["normal", at + 1];
        continue;
      }
      case "escapeQuote":
        if (b === 0x5c) i += 2;
        else if (b === 0x27 && line[i + 1] === 0x27) i += 2;
        else [st.mode, i] = [b === 0x27 ? "normal" : st.mode, i + 1];
        continue;
      case "dollar": {
        const at = line.indexOf(st.tag, i);
        if (at < 0) return;
        [st.mode, i] = ["normal", at + st.tag.length];
        continue;
      }
      case "block":
        if (b === 0x2a && line[i + 1] === 0x2f) [st.depth, i] = [st.depth - 1, i + 2];
        else if (b === 0x2f && line[i + 1] === 0x2a) [st.depth, i] = [st.depth + 1, i + 2];
        else i++;
        if (st.depth === 0) st.mode = "normal";
        continue;
      default:
        break;
    }
    if (b === 0x2d && line[i + 1] === 0x2d) return;
    if (b === 0x2f && line[i + 1] === 0x2a) {
      [st.mode, st.depth, i] = ["block", 1, i + 2];
      continue;
    }
    if (b === 0x5c) {
      ev.meta?.(i);
      return;
    }
    if (st.atStart) {
      if (SPACE.has(b)) {
        i++;
        continue;
      }
      st.atStart = false;
      st.copy = line.toString("latin1", i, i + 5).toUpperCase() === "COPY ";
      ev.start?.(i);
    }
    if (b === 0x27) {
      const escaped = (line[i - 1] === 0x45 || line[i - 1] === 0x65) && !isIdentByte(line[i - 2]);
      st.mode = escaped ? "escapeQuote" : "quote";
    } else if (b === 0x22) {
      st.mode = "doubleQuote";
    } else if (b === 0x24) {
      const tag = dollarTag(line, i);
      if (tag !== null) {
        [st.mode, st.tag, i] = ["dollar", Buffer.from(tag), i + tag.length];
        continue;
      }
    } else if (b === 0x3b) {
      st.copyNext = st.copy && i >= FROM_STDIN.length && FROM_STDIN.compare(line, i - FROM_STDIN.length, i) === 0;
      [st.atStart, st.copy] = [true, false];
      ev.end?.(i);
    }
    i++;
  }
}

/** Whether the scanner is inside COPY data (or about to be, after the current line). */
export function inCopy(st: ScanState): boolean {
  return st.mode === "copy" || st.copyNext;
}

export interface Statement {
  start: number;
  /** Just past the terminating ';' (or the end of the text when it has none). */
  end: number;
}

/** Every SQL statement of a text held in memory (the globals), with byte offsets. */
export function splitStatements(text: Buffer): Statement[] {
  const st = newScanState();
  const out: Statement[] = [];
  const cur: { open: number | null } = { open: null };
  for (let pos = 0; pos < text.length; ) {
    const nl = text.indexOf(0x0a, pos);
    const next = nl < 0 ? text.length : nl + 1;
    const base = pos;
    scanLine(text.subarray(pos, next), st, {
      start: (p) => void (cur.open = base + p),
      end: (p) => {
        if (cur.open !== null) out.push({ start: cur.open, end: base + p + 1 });
        cur.open = null;
      },
    });
    pos = next;
  }
  if (cur.open !== null) out.push({ start: cur.open, end: text.length });
  return out;
}
