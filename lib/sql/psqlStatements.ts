// When psql sends a statement to the server, as psql 15–17 decide it (psqlscan.l): at a ';'
// outside parentheses and outside a BEGIN ATOMIC body, which psql counts only in a statement
// that starts CREATE [OR REPLACE] FUNCTION|PROCEDURE, by the words BEGIN, CASE and END. The
// statement sent decides whether the server then wants COPY data: only pg_dump's own COPY
// line is let through, since lines taken for data are not checked for meta-commands.
import { ScriptRefusal, printable } from "./scriptRefusal.js";

const COPY_TAIL = " FROM stdin";
/** Identifiers psql notes to spot CREATE [OR REPLACE] FUNCTION|PROCEDURE. */
const NOTED = new Set(["create", "function", "procedure", "or", "replace"]);

export class PsqlStatements {
  /** psql's query buffer holds a token (comments aside) since it last sent a statement. */
  open = false;
  paren = 0;
  begin = 0;
  /** psql sent pg_dump's COPY line: its ';' must end the line; data lines follow. */
  copyNext = false;
  private ids = "";
  private idCount = 0;
  /** The statement began CREATE [OR REPLACE] FUNCTION|PROCEDURE: psql counts BEGIN/CASE/END in it. */
  private tracking = false;
  /** A ';' psql did not send at (inside parentheses or BEGIN ATOMIC) is in the statement. */
  private unsentSemi = false;
  /** No token since the last ';', and whether that held when the current token began. */
  private fresh = true;
  private tokenFresh = false;
  /** The statement began with COPY: the line it began on, at column 0 or not; and its last bytes. */
  private copy: { line: number; col0: boolean } | null = null;
  private copyTail = "";

  get inCopyStatement(): boolean {
    return this.copy !== null;
  }

  /** A token other than whitespace or a comment begins. */
  token(): void {
    this.open = true;
    this.tokenFresh = this.fresh;
    this.fresh = false;
  }

  copyByte(b: number): void {
    this.copyTail = (this.copyTail + String.fromCharCode(b)).slice(-COPY_TAIL.length);
  }

  /** Whether a word of this length must be read: the first of a statement, and every one where BEGIN/CASE/END count. */
  wordMatters(length: number): boolean {
    return this.idCount < 4 || this.tracking || this.unsentSemi || length === 1;
  }

  otherWord(): void {
    this.idCount++;
  }

  /** An identifier (lower-cased; "" when longer than any that matters), as psql counts them. */
  word(word: string, col0: boolean, line: number): void {
    const first = this.idCount === 0;
    if (first) [this.ids, this.tracking] = ["", false];
    if (this.idCount < 4 && NOTED.has(word)) {
      this.ids = this.ids.padEnd(this.idCount, "-") + word[0];
      const ids = this.ids.padEnd(4, "-");
      this.tracking = ids[0] === "c" && (ids[1] === "f" || ids[1] === "p" || (ids[1] === "o" && ids[2] === "r" && (ids[3] === "f" || ids[3] === "p")));
    }
    this.idCount++;
    if (word === "copy" && this.unsentSemi && this.tokenFresh) {
      throw new ScriptRefusal(line, "COPY", "a COPY statement after a ';' inside an open statement, which psql would not send as a COPY");
    }
    if (first && word === "copy") [this.copy, this.copyTail] = [{ line, col0 }, "copy"];
    if (!this.tracking || this.paren !== 0) return;
    if (word === "begin") this.begin++;
    else if (word === "case" && this.begin >= 1) this.begin++;
    else if (word === "end" && this.begin > 0) this.begin--;
  }

  semicolon(line: number): void {
    this.fresh = true;
    if (this.paren !== 0 || this.begin !== 0) {
      this.unsentSemi = true;
      return;
    }
    const copy = this.copy;
    if (copy !== null) {
      if (!copy.col0 || copy.line !== line) throw new ScriptRefusal(line, "COPY", "a COPY statement that is not one line of its own, as pg_dump writes it");
      if (this.copyTail !== COPY_TAIL) throw new ScriptRefusal(line, printable(`COPY …${this.copyTail};`), "a COPY statement that does not end in FROM stdin, as pg_dump writes it");
      this.copyNext = true;
    }
    [this.open, this.idCount, this.unsentSemi, this.copy] = [false, 0, false, null];
  }
}
