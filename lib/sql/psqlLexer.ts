// Where psql runs meta-commands in a script, found the way psql's own lexer (psqlscan.l,
// PostgreSQL 15–17) finds them, a byte at a time, so any chunking and any line length cost
// linear time and constant memory. lib/sql/scanner.ts, enough to rewrite statements, is not
// enough to guard with: it ends statements at every ';' (psql waits while parentheses or a
// BEGIN ATOMIC body are open) and trusts any "COPY … FROM stdin;" to start data lines. Here a
// line is COPY data only when psql sends exactly pg_dump's COPY line as a statement of its
// own; any other COPY is refused.
// psql's lexing also depends on two session settings a script can change behind our back
// (dynamic SQL, role or database defaults): standard_conforming_strings (whether '\' escapes
// a quote) and client_encoding (in SJIS, BIG5, GBK, UHC, GB18030 or JOHAB the second byte of
// a character may be '\' or ';'). Text whose lexing those settings would change is refused:
// an odd run of backslashes before a quote, a byte >= 0x80 before a backslash in a string,
// any byte >= 0x80 outside quotes and comments (pg_dump quotes every non-ASCII name).
import { PsqlStatements } from "./psqlStatements.js";
import { ScriptRefusal, printable } from "./scriptRefusal.js";

/** Judges a complete meta-command line (from its backslash, without the newline); a reason refuses it. */
export type MetaCheck = (line: string, atBoundary: boolean) => string | null;

const enum Mode {
  Normal,
  Quote,
  DoubleQuote,
  DollarOpen,
  Dollar,
  Block,
  LineComment,
  Meta,
  Copy,
}

const NL = 0x0a;
const BACKSLASH = 0x5c;
/** pg_dump's longest meta-command is a \connect with a quoted database name (at most 63 bytes). */
const MAX_META_LINE = 64 * 1024;
/** `\.` and `\.\r` as numbers, the bytes of a line read big-endian. */
const COPY_END = 0x5c2e;
const COPY_END_CR = 0x5c2e0d;
const isLetter = (b: number) => (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x5f;
const isDigit = (b: number) => b >= 0x30 && b <= 0x39;
/** The longest word that matters: "procedure". */
const WORD_MAX = 9;
/** One letter before a quote starts a string (E'…', B'…', X'…', N'…'); `u&` never counts either. */
const STRING_PREFIX = new Set(["e", "b", "x", "n"]);
const NUL = "a NUL byte outside COPY data, after which psql would not see the rest of the line";
const NON_ASCII = "a non-ASCII byte outside quotes and comments, which psql reads differently in some client encodings";

export class PsqlLexer {
  /** Line of the next byte (1-based). */
  line = 1;
  private mode = Mode.Normal;
  private col0 = true;
  /** When psql sends statements, and whether the one sent is pg_dump's COPY. */
  private readonly st = new PsqlStatements();
  /** normal() met a backslash: a meta-command line starts at this byte. */
  private metaAt = false;
  private copyHead = 0;
  private copyLen = 0;
  private token: "none" | "ident" | "number" | "variable" = "none";
  /** The current word, lower-cased, as far as WORD_MAX bytes. */
  private readonly wordBuf = Buffer.alloc(WORD_MAX);
  private wordLen = 0;
  private wordCol0 = false;
  /** First byte of a possible two-byte token ("--", "/*", "::", ":name", a doubled quote), decided by the next byte. */
  private pending = 0;
  private prev = 0;
  private backslashes = 0;
  private depth = 0;
  private tag = "";
  private closing: Buffer = Buffer.alloc(0);
  private carry: Buffer = Buffer.alloc(0);
  private meta: Buffer[] = [];
  private metaBytes = 0;
  private metaLine = 0;
  private metaBoundary = false;

  constructor(private readonly checkMeta: MetaCheck) {}

  /** Scans a chunk; returns its bytes that may go to psql now (a meta-command line is held until judged whole). */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    const n = chunk.length;
    let from = 0;
    let i = 0;
    while (i < n) {
      if (this.mode === Mode.Copy) {
        i = this.copyData(chunk, i);
      } else if (this.mode === Mode.Dollar) {
        i = this.dollarBody(chunk, i);
      } else if (this.mode === Mode.LineComment) {
        const nl = chunk.indexOf(NL, i);
        this.noNul(chunk, i, nl < 0 ? n : nl);
        [this.mode, i] = nl < 0 ? [Mode.LineComment, n] : [Mode.Normal, nl];
      } else if (this.mode === Mode.Meta) {
        const nl = chunk.indexOf(NL, i);
        const end = nl < 0 ? n : nl;
        this.noNul(chunk, i, end);
        this.meta.push(chunk.subarray(i, end));
        this.metaBytes += end - i;
        if (this.metaBytes > MAX_META_LINE) {
          throw new ScriptRefusal(this.metaLine, printable(Buffer.concat(this.meta).toString("latin1")), `a psql meta-command line longer than ${MAX_META_LINE} bytes`);
        }
        if (nl < 0) return out;
        out.push(this.judgeMeta(true));
        [this.mode, this.col0, this.line, i, from] = [Mode.Normal, true, this.line + 1, nl + 1, nl + 1];
      } else {
        const b = chunk[i] as number;
        if (b === 0) this.refuse("\0", NUL);
        if (this.token === "ident" && this.pending === 0 && this.mode === Mode.Normal && !this.st.inCopyStatement) {
          // The rest of a word, in one go: most of a schema's text is words.
          let k = i;
          for (; k < n; k++) {
            const c = chunk[k] as number;
            if (!(isLetter(c) || isDigit(c) || c === 0x24)) break;
            if (this.wordLen++ < WORD_MAX) this.wordBuf[this.wordLen - 1] = c | 0x20;
          }
          if (k > i) {
            this.col0 = false;
            i = k;
            continue;
          }
        }
        if (this.st.copyNext) {
          if (b !== NL) this.refuse(chunk.toString("latin1", i, i + 40), "text after a COPY statement on its line");
          [this.st.copyNext, this.mode, this.copyHead, this.copyLen] = [false, Mode.Copy, 0, 0];
        } else {
          this.byte(b);
          if (this.metaAt) {
            // psql starts a meta-command at any backslash outside quotes and comments; it runs to the end of the line.
            if (from < i) out.push(chunk.subarray(from, i));
            [this.metaAt, this.mode, this.metaLine, this.metaBoundary, this.meta, this.metaBytes, from] = [false, Mode.Meta, this.line, this.col0 && !this.st.open, [], 0, i];
            continue;
          }
          if (this.st.inCopyStatement) this.st.copyByte(b);
        }
        this.col0 = b === NL;
        if (b === NL) this.line++;
        i++;
      }
    }
    if (this.mode !== Mode.Meta && from < n) out.push(chunk.subarray(from));
    return out;
  }

  /** The end of the input: a last meta-command line without its newline still runs in psql. */
  end(): Buffer[] {
    if (this.mode !== Mode.Meta) return [];
    this.mode = Mode.Normal;
    return [this.judgeMeta(false)];
  }

  private judgeMeta(newline: boolean): Buffer {
    const line = Buffer.concat(this.meta);
    const text = line.toString("latin1");
    const reason = this.checkMeta(text, this.metaBoundary);
    if (reason !== null) throw new ScriptRefusal(this.metaLine, printable(text), reason);
    return newline ? Buffer.concat([line, Buffer.from("\n")]) : line;
  }

  private refuse(found: string, reason: string): never {
    throw new ScriptRefusal(this.line, printable(found), reason);
  }

  /** COPY data goes to the server raw, line by line, up to a line that is exactly `\.` (psql also takes `\.\r`). */
  private copyData(chunk: Buffer, i: number): number {
    const nl = chunk.indexOf(NL, i);
    const end = nl < 0 ? chunk.length : nl;
    // Only a line of 2 or 3 bytes can end the data: remember those bytes, across chunks.
    for (let k = i; k < end && this.copyLen + (k - i) < 3; k++) this.copyHead = this.copyHead * 256 + (chunk[k] as number);
    this.copyLen += end - i;
    if (nl < 0) return chunk.length;
    if ((this.copyLen === 2 && this.copyHead === COPY_END) || (this.copyLen === 3 && this.copyHead === COPY_END_CR)) this.mode = Mode.Normal;
    this.copyHead = 0;
    this.copyLen = 0;
    this.col0 = true;
    this.line++;
    return nl + 1;
  }

  /** A dollar-quoted body ends at the first copy of its opening tag, which may straddle chunks. */
  private dollarBody(chunk: Buffer, i: number): number {
    const keep = this.closing.length - 1;
    if (this.carry.length > 0) {
      const probe = Buffer.concat([this.carry, chunk.subarray(i, i + keep)]);
      const at = probe.indexOf(this.closing);
      if (at >= 0) return this.closeDollar(chunk, i, i + at + this.closing.length - this.carry.length);
    }
    const at = chunk.indexOf(this.closing, i);
    if (at >= 0) return this.closeDollar(chunk, i, at + this.closing.length);
    this.noNul(chunk, i, chunk.length);
    this.countLines(chunk, i, chunk.length);
    this.carry = Buffer.from(Buffer.concat([this.carry, chunk.subarray(Math.max(i, chunk.length - keep))]).subarray(-keep));
    return chunk.length;
  }

  private closeDollar(chunk: Buffer, i: number, end: number): number {
    this.noNul(chunk, i, end);
    this.countLines(chunk, i, end);
    [this.mode, this.carry] = [Mode.Normal, Buffer.alloc(0)];
    return end;
  }

  /** psql reads its input as C strings: a NUL hides the rest of its line from psql, but not from us. */
  private noNul(chunk: Buffer, from: number, to: number): void {
    const at = chunk.indexOf(0, from);
    if (at < 0 || at >= to) return;
    this.countLines(chunk, from, at);
    this.refuse("\0", NUL);
  }

  private countLines(chunk: Buffer, from: number, to: number): void {
    for (let nl = chunk.indexOf(NL, from); nl >= 0 && nl < to; nl = chunk.indexOf(NL, nl + 1)) this.line++;
    if (to > from) this.col0 = chunk[to - 1] === NL;
  }

  private byte(b: number): void {
    switch (this.mode) {
      case Mode.Quote:
        return this.quoteByte(b);
      case Mode.DoubleQuote:
        if (this.pending === 0x22) {
          this.pending = 0;
          if (b === 0x22) return;
          this.mode = Mode.Normal;
          return this.normal(b);
        }
        if (b === 0x22) this.pending = 0x22;
        return;
      case Mode.Block:
        if (this.prev === 0x2a && b === 0x2f) {
          this.depth--;
          b = 0;
        } else if (this.prev === 0x2f && b === 0x2a) {
          this.depth++;
          b = 0;
        }
        if (this.depth === 0) this.mode = Mode.Normal;
        this.prev = b;
        return;
      case Mode.DollarOpen:
        return this.dollarOpen(b);
      default:
        return this.normal(b);
    }
  }

  private quoteByte(b: number): void {
    if (this.pending === 0x27) {
      this.pending = 0;
      if (b !== 0x27) {
        this.mode = Mode.Normal;
        return this.normal(b);
      }
      this.prev = b;
      this.backslashes = 0;
      return;
    }
    if (b === 0x27) {
      if (this.backslashes % 2 === 1) this.refuse("\\'", "a string literal with a backslash before its quote, which psql reads differently when standard_conforming_strings is off");
      this.pending = 0x27;
    } else if (b === BACKSLASH) {
      if (this.prev >= 0x80) this.refuse("\\", "a non-ASCII byte before a backslash in a string literal, which psql reads differently in some client encodings");
      this.backslashes++;
    } else {
      this.backslashes = 0;
    }
    this.prev = b;
  }

  /** `$` then tag letters: a dollar quote when a `$` closes the tag; otherwise psql takes the `$` alone and lexes on. */
  private dollarOpen(b: number): void {
    if (b === 0x24) {
      [this.mode, this.closing, this.carry] = [Mode.Dollar, Buffer.from(`${this.tag}$`, "latin1"), Buffer.alloc(0)];
      return;
    }
    if (isLetter(b) || (this.tag.length > 1 && isDigit(b))) {
      this.tag += String.fromCharCode(b);
      return;
    }
    if (b >= 0x80) this.refuse(String.fromCharCode(b), NON_ASCII);
    const rest = this.tag.slice(1);
    this.mode = Mode.Normal;
    for (const c of rest) this.normal(c.charCodeAt(0));
    this.normal(b);
  }

  private normal(b: number): void {
    if (this.pending !== 0) {
      const first = this.pending;
      this.pending = 0;
      if (first === 0x2d && b === 0x2d) return void (this.mode = Mode.LineComment);
      if (first === 0x2f && b === 0x2a) return void ([this.mode, this.depth, this.prev] = [Mode.Block, 1, 0]);
      this.st.token();
      if (first === 0x3a && b === 0x3a) return;
      if (first === 0x3a && (isLetter(b) || isDigit(b))) return void (this.token = "variable");
    }
    if (this.token !== "none") {
      if (this.continueToken(b)) return;
      this.endToken(b);
    }
    if (b === BACKSLASH) return void (this.metaAt = true);
    if (b === 0x20 || (b >= 0x09 && b <= 0x0d)) return;
    if (b >= 0x80) this.refuse(String.fromCharCode(b), NON_ASCII);
    if (b === 0x2d || b === 0x2f || b === 0x3a) {
      this.pending = b;
      return;
    }
    this.st.token();
    if (b === 0x27) {
      this.mode = Mode.Quote;
      this.prev = 0;
      this.backslashes = 0;
    } else if (b === 0x22) this.mode = Mode.DoubleQuote;
    else if (b === 0x24) {
      this.mode = Mode.DollarOpen;
      this.tag = "$";
    } else if (isLetter(b)) {
      this.token = "ident";
      this.wordBuf[0] = b | 0x20;
      this.wordLen = 1;
      this.wordCol0 = this.col0;
    } else if (isDigit(b)) this.token = "number";
    else if (b === 0x3b) this.st.semicolon(this.line);
    else if (b === 0x28) this.st.paren++;
    else if (b === 0x29 && this.st.paren > 0) this.st.paren--;
  }

  /** Whether `b` continues the current word, number or :variable. */
  private continueToken(b: number): boolean {
    if (this.token === "number") {
      if (isDigit(b) || b === 0x2e) return true;
      if (!isLetter(b)) return false;
      // psql 15+ lexes "1end" as one junk token, psql 14 as 1 and END: refuse where it matters.
      if (this.st.begin > 0) this.refuse(String.fromCharCode(b), "a number run into a word inside a BEGIN ATOMIC body, which psql versions lex differently");
      return true;
    }
    if (b >= 0x80) this.refuse(String.fromCharCode(b), NON_ASCII);
    if (!isLetter(b) && !isDigit(b) && !(b === 0x24 && this.token === "ident")) return false;
    if (this.token === "ident" && this.wordLen++ < WORD_MAX) this.wordBuf[this.wordLen - 1] = b | 0x20;
    return true;
  }

  /** A word ends before `next`: psql counts identifiers for its BEGIN ATOMIC tracking. */
  private endToken(next: number): void {
    const ident = this.token === "ident";
    this.token = "none";
    if (!ident) return;
    if (!this.st.wordMatters(this.wordLen)) return this.st.otherWord();
    const word = this.wordLen > WORD_MAX ? "" : this.wordBuf.toString("latin1", 0, this.wordLen);
    // E'…', B'…', X'…', N'…' and u& are not identifiers to psql.
    if (word.length === 1 && ((STRING_PREFIX.has(word) && next === 0x27) || (word === "u" && next === 0x26))) return;
    this.st.word(word, this.wordCol0, this.line);
  }
}
