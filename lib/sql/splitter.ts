// Splits a pg_dumpall-shaped SQL stream into its globals and one section per database, in
// one pass with bounded memory. Format facts, checked against pg_dumpall/pg_dump 15.18:
// - globals (header, roles, role settings, tablespaces) end with "--\n-- Databases\n--\n\n";
// - each database starts with "--\n-- Database \"NAME\" dump\n--\n\n", NAME printed raw (quotes
//   not doubled, UTF-8 as stored); pg_dumpall and pg_dump --create refuse names holding CR or
//   LF, and lib/backup/dump.ts prints those as spaces (see printedName), so a header is one line;
// - pg_dump output ends with "--\n-- PostgreSQL database dump complete\n--\n\n";
// - the file ends with "--\n-- PostgreSQL database cluster dump complete\n--\n\n";
// - since 13.22/14.19/15.14/16.10/17.6 every part opens with "\restrict KEY" (a random key per
//   pg_dumpall/pg_dump run) and closes with "\unrestrict KEY\n\n" right after its trailer.
// A header counts only outside COPY data and right after the end of the previous part (the
// "-- Databases" block, or the dump-complete block), and, when the part had a \restrict key,
// only after "\unrestrict <that key>". Dumped data cannot predict the key, so quoted role
// names or function bodies that copy these lines cannot split a keyed file. Without keys
// (older dumps) such a copy of a trailer plus a header still splits: callers compare the
// sections found with the manifest's `included` list.

const NL = 0x0a;
const DASH = 0x2d;
const BACKSLASH = 0x5c;
const DOT = 0x2e;
const UPPER_C = 0x43;
/** COPY statements list every column (at most 1600 quoted names); longer lines are data. */
const MAX_INSPECTED_LINE = 1 << 20;
const COPY_END = Buffer.from("\n\\.\n");
const COPY_START = Buffer.from("COPY ");
const COPY_FROM_STDIN = Buffer.from(" FROM stdin;");
const HEADER_PREFIX = Buffer.from('-- Database "');
const HEADER_SUFFIX = Buffer.from('" dump');
const LINE_DATABASES = Buffer.from("-- Databases");
const LINE_DUMP_COMPLETE = Buffer.from("-- PostgreSQL database dump complete");
const LINE_CLUSTER_COMPLETE = Buffer.from("-- PostgreSQL database cluster dump complete");
const RESTRICT = Buffer.from("\\restrict ");
const UNRESTRICT = Buffer.from("\\unrestrict ");

/** Lines that matter for boundaries; every other line outside COPY is "other". */
type Token = "dash" | "blank" | "databases" | "dumpComplete" | "unrestrict" | "other";
const AFTER_DATABASES: Token[] = ["dash", "databases", "dash", "blank"];
const AFTER_DATABASES_KEYED: Token[] = ["unrestrict", "blank", ...AFTER_DATABASES];
const AFTER_DUMP: Token[] = ["dash", "dumpComplete", "dash", "blank"];
const AFTER_DUMP_KEYED: Token[] = [...AFTER_DUMP, "unrestrict", "blank"];
const HISTORY = AFTER_DUMP_KEYED.length;

/** What the lines of a held block count as once released: "--", marker, "--", "". */
const HELD_TOKENS: Token[] = ["dash", "other", "dash", "blank"];

/** Normal: the line stays in the current part; Held: kept back as a possible header or
 * cluster trailer; Switch: the held lines are a database header and start a new section. */
const enum Verdict {
  Normal,
  Held,
  Switch,
}

export interface SectionEvents {
  /** Chunks may alias the input buffers: write or copy them, do not mutate them. */
  onGlobals?(chunk: Buffer): void | Promise<void>;
  onDatabaseStart?(name: string): void | Promise<void>;
  /** Each section's bytes start with its own "-- Database" header block. */
  onDatabaseData?(name: string, chunk: Buffer): void | Promise<void>;
  /** complete: the section ended with pg_dump's "dump complete" trailer (and its \unrestrict). */
  onDatabaseEnd?(name: string, complete: boolean): void | Promise<void>;
}

export interface SectionSummary {
  name: string;
  bytes: number;
  complete: boolean;
}

export interface SectionsResult {
  databases: string[];
  sections: SectionSummary[];
  globalsBytes: number;
  /** Every byte of the stream, the cluster trailer included. */
  bytes: number;
  /** false: the stream was cut short (or is not pg_dumpall output). */
  clusterTrailer: boolean;
}

const startsWith = (line: Buffer, prefix: Buffer): boolean =>
  line.length >= prefix.length && prefix.compare(line, 0, prefix.length) === 0;
const endsWith = (line: Buffer, suffix: Buffer): boolean =>
  line.length >= suffix.length && suffix.compare(line, line.length - suffix.length) === 0;

function headerName(line: Buffer): string | null {
  if (line.length < HEADER_PREFIX.length + HEADER_SUFFIX.length) return null;
  if (!startsWith(line, HEADER_PREFIX) || !endsWith(line, HEADER_SUFFIX)) return null;
  return line.toString("utf8", HEADER_PREFIX.length, line.length - HEADER_SUFFIX.length);
}

export class SectionSplitter {
  readonly sections: SectionSummary[] = [];
  private globalsBytes = 0;
  private current: SectionSummary | null = null;
  /** Bytes decided for the current part, handed over once per input chunk. */
  private queue: Buffer[] = [];
  private held: Buffer[] = [];
  private heldName: string | null = null;
  private heldIsTrailer = false;
  /** Tokens of the lines since the last "other" line, outside COPY. */
  private hist: Token[] = [];
  private key: string | null = null;
  private inCopy = false;
  /** An inspected line cut by a chunk boundary, joined to the next chunk. */
  private carry: Buffer | null = null;
  /** Inside a line that cannot matter, passed on as it arrives. */
  private streaming = false;
  private bytes = 0;

  constructor(private readonly events: SectionEvents) {}

  async push(input: Buffer): Promise<void> {
    this.bytes += input.length;
    let chunk = input;
    let pos = 0;
    if (this.carry !== null) {
      chunk = Buffer.concat([this.carry, input]);
      this.carry = null;
    } else if (this.streaming) {
      const nl = chunk.indexOf(NL);
      if (nl < 0) {
        this.queue.push(chunk);
        return this.flush();
      }
      this.streaming = false;
      if (!this.inCopy) this.note("other");
      pos = nl + 1;
    }
    let runStart = 0;
    while (pos < chunk.length) {
      if (this.inCopy && pos > 0) {
        // Only a "\." line can end COPY data: jump straight to it instead of walking rows
        // (the byte before a line start is its predecessor's newline).
        const end = chunk.indexOf(COPY_END, pos - 1);
        const last = end >= 0 ? end : chunk.lastIndexOf(NL);
        if (last >= pos) {
          pos = last + 1;
          continue;
        }
      }
      const nl = chunk.indexOf(NL, pos);
      const inspect = this.held.length > 0 || this.mayMatter(chunk, pos, nl);
      if (nl < 0) {
        if (inspect) {
          this.pushRun(chunk, runStart, pos);
          runStart = chunk.length;
          this.keepPartial(chunk.subarray(pos));
        } else {
          this.streaming = true;
        }
        break;
      }
      if (!inspect) {
        if (!this.inCopy) this.note("other");
      } else {
        const verdict = this.line(chunk.subarray(pos, nl + 1));
        if (verdict !== Verdict.Normal) {
          this.pushRun(chunk, runStart, pos);
          runStart = nl + 1;
          if (verdict === Verdict.Switch) await this.switchSection();
        }
      }
      pos = nl + 1;
    }
    this.pushRun(chunk, runStart, chunk.length);
    await this.flush();
  }

  /** Cheap test on the first bytes and the length (nl < 0: the line goes on in the next chunk). */
  private mayMatter(chunk: Buffer, pos: number, nl: number): boolean {
    const first = chunk[pos] as number;
    if (this.inCopy) return first === BACKSLASH;
    if (first === NL || first === BACKSLASH) return true;
    if (first === DASH) {
      const length = nl - pos;
      return nl < 0 || length === 2 || length === LINE_DATABASES.length || length === LINE_DUMP_COMPLETE.length;
    }
    return first === UPPER_C && (nl < 0 || nl - pos > COPY_START.length + COPY_FROM_STDIN.length);
  }

  async end(): Promise<SectionsResult> {
    // A last line without its newline cannot complete any block; it only has to be kept.
    const cutLine = this.streaming || this.carry !== null;
    if (this.carry !== null && this.line(this.carry) === Verdict.Normal) this.queue.push(this.carry);
    this.carry = null;
    const clusterTrailer = this.heldIsTrailer;
    if (clusterTrailer) this.resetHold();
    else this.release();
    await this.flush();
    const current = this.current;
    if (current !== null) {
      current.complete = clusterTrailer || (!cutLine && this.atBoundary());
      await this.events.onDatabaseEnd?.(current.name, current.complete);
    }
    return {
      databases: this.sections.map((s) => s.name),
      sections: this.sections,
      globalsBytes: this.globalsBytes,
      bytes: this.bytes,
      clusterTrailer,
    };
  }

  private line(buf: Buffer): Verdict {
    const content = buf[buf.length - 1] === NL ? buf.subarray(0, buf.length - 1) : buf;
    if (this.inCopy) {
      if (content.length === 2 && content[0] === BACKSLASH && content[1] === DOT) {
        this.inCopy = false;
        this.note("other");
      }
      return Verdict.Normal;
    }
    if (this.held.length > 0) {
      const verdict = this.extendHold(buf, content);
      if (verdict !== null) return verdict;
      this.release();
    }
    const token = this.classify(content);
    if (token === "dash" && this.atBoundary()) {
      this.held = [buf];
      return Verdict.Held;
    }
    this.note(token);
    return Verdict.Normal;
  }

  private classify(line: Buffer): Token {
    if (line.length === 0) return "blank";
    if (line[0] === DASH) {
      if (line.length === 2 && line[1] === DASH) return "dash";
      if (line.equals(LINE_DATABASES)) return "databases";
      if (line.equals(LINE_DUMP_COMPLETE)) return "dumpComplete";
      return "other";
    }
    if (line[0] === BACKSLASH) {
      // The first \restrict of a part is pg_dump's own: it precedes every dumped object.
      if (startsWith(line, RESTRICT)) this.key ??= line.toString("latin1", RESTRICT.length);
      else if (startsWith(line, UNRESTRICT) && line.toString("latin1", UNRESTRICT.length) === this.key) {
        return "unrestrict";
      }
      return "other";
    }
    // pg_dump always puts a blank line (end of the "Data for Name" comment) before COPY;
    // requiring it keeps a lone "COPY … FROM stdin;" line in a function body out.
    if (startsWith(line, COPY_START) && endsWith(line, COPY_FROM_STDIN) && this.hist.at(-1) === "blank") {
      this.inCopy = true;
    }
    return "other";
  }

  /** Line 2, 3 or 4 of a candidate block; null when the candidate fails. */
  private extendHold(buf: Buffer, line: Buffer): Verdict | null {
    if (this.heldIsTrailer) return null;
    const index = this.held.length;
    if (index === 1) {
      if (!line.equals(LINE_CLUSTER_COMPLETE)) {
        this.heldName = headerName(line);
        if (this.heldName === null) return null;
      }
    } else if (index === 2) {
      if (line.length !== 2 || line[0] !== DASH || line[1] !== DASH) return null;
    } else if (line.length !== 0) {
      return null;
    }
    this.held.push(buf);
    if (index < 3) return Verdict.Held;
    if (this.heldName !== null) return Verdict.Switch;
    this.heldIsTrailer = true;
    return Verdict.Held;
  }

  /** The held lines were not a boundary after all: they belong to the current part. */
  private release(): void {
    if (this.held.length === 0) return;
    this.queue.push(...this.held);
    for (const token of HELD_TOKENS.slice(0, this.held.length)) this.note(token);
    this.resetHold();
  }

  private resetHold(): void {
    [this.held, this.heldName, this.heldIsTrailer] = [[], null, false];
  }

  private note(token: Token): void {
    if (token === "other") {
      if (this.hist.length > 0) this.hist.length = 0;
      return;
    }
    this.hist.push(token);
    if (this.hist.length > HISTORY) this.hist.shift();
  }

  private atBoundary(): boolean {
    const keyed = this.key !== null;
    const pattern =
      this.current === null ? (keyed ? AFTER_DATABASES_KEYED : AFTER_DATABASES) : keyed ? AFTER_DUMP_KEYED : AFTER_DUMP;
    const offset = this.hist.length - pattern.length;
    return offset >= 0 && pattern.every((token, i) => this.hist[offset + i] === token);
  }

  /** Keeps a cut line for the next chunk, unless it is too long to be worth inspecting. */
  private keepPartial(part: Buffer): void {
    if (part.length <= (this.inCopy ? 2 : MAX_INSPECTED_LINE)) {
      this.carry = part;
      return;
    }
    this.release();
    this.queue.push(part);
    this.streaming = true;
  }

  private pushRun(chunk: Buffer, start: number, end: number): void {
    if (end > start) this.queue.push(chunk.subarray(start, end));
  }

  private async switchSection(): Promise<void> {
    await this.flush();
    const name = this.heldName as string;
    if (this.current !== null) {
      this.current.complete = true;
      await this.events.onDatabaseEnd?.(this.current.name, true);
    }
    this.current = { name, bytes: 0, complete: false };
    this.sections.push(this.current);
    this.queue = this.held;
    this.resetHold();
    this.hist = [];
    this.key = null;
    await this.events.onDatabaseStart?.(name);
  }

  private async flush(): Promise<void> {
    if (this.queue.length === 0) return;
    const data = this.queue.length === 1 ? (this.queue[0] as Buffer) : Buffer.concat(this.queue);
    this.queue = [];
    if (this.current === null) {
      this.globalsBytes += data.length;
      await this.events.onGlobals?.(data);
    } else {
      this.current.bytes += data.length;
      await this.events.onDatabaseData?.(this.current.name, data);
    }
  }
}
