// Pure: the globals (roles, memberships, tablespaces) of a backup, adjusted to the cluster
// they are applied to, so psql can run them with ON_ERROR_STOP and every remaining error
// is a real one:
// - CREATE ROLE / CREATE TABLESPACE of a name that exists is left out (pg_dumpall | psql
//   would print "already exists" and go on; the ALTER ROLE that follows still applies the
//   backup's attributes, as pg_dumpall intends);
// - the role the task connects as keeps its current password: the backup may hold an old
//   one, and restoring it would lock the tasks out after a secret rotation;
// - "missingRoles" (restore-database into a live cluster) applies only what concerns roles
//   the cluster lacks: their creation, attributes, settings, comments and memberships.
//   Existing roles and tablespaces are not touched.
// pg_dumpall's own `\restrict KEY` / `\unrestrict KEY` lines are left out too: psql runs
// restricted with the tool's key (lib/restore/restrict.ts) and would refuse them.
// Left-out statements are replaced by their newlines only, so psql's line numbers are
// still the file's line numbers. The globals stream through (GlobalsFilter): only the open
// statement is held, up to 1 MiB, so a globals part of any size (a hostile one of endless
// comment lines included) costs bounded memory.
import { IDENT, identName } from "../sql/ident.js";
import { newScanState, scanLine } from "../sql/scanner.js";

export type GlobalsMode = "all" | "missingRoles";

export interface ClusterGlobals {
  roles: ReadonlySet<string>;
  tablespaces: ReadonlySet<string>;
  /** The role the task is connected as. */
  currentUser: string;
}

const rx = (src: string) => new RegExp(`^${src}`, "i");
const CREATE_ROLE = rx(String.raw`CREATE\s+ROLE\s+(${IDENT})`);
const ABOUT_ROLE = rx(String.raw`(?:ALTER\s+ROLE|COMMENT\s+ON\s+ROLE|SECURITY\s+LABEL\s+(?:FOR\s+${IDENT}\s+)?ON\s+ROLE)\s+(${IDENT})`);
const MEMBERSHIP = rx(String.raw`GRANT\s+(${IDENT})\s+TO\s+(${IDENT})`);
const CREATE_TABLESPACE = rx(String.raw`CREATE\s+TABLESPACE\s+(${IDENT})`);
const SESSION_SETUP = rx(String.raw`SET\s`);
const PASSWORD = /\s+PASSWORD\s+'(?:[^']|'')*'/i;
const KEYED = /^\\(?:restrict|unrestrict) [A-Za-z0-9]+[ \t\r]*\n?$/;

type Verdict = "keep" | "drop" | "dropPassword";

/** Statements longer than this are judged on their first WINDOW bytes and streamed; role and tablespace statements are short. */
const MAX_HELD = 1 << 20;
const WINDOW = 64 * 1024;
/** A line is scanned whole; past this the globals are refused. */
const MAX_LINE = 1 << 30;
const NL = 0x0a;

function judge(stmt: string, mode: GlobalsMode, cluster: ClusterGlobals, out: { created: string[]; existing: string[] }): Verdict {
  const missing = (name: string) => !cluster.roles.has(name);
  let m = CREATE_ROLE.exec(stmt);
  if (m !== null) {
    const role = identName(m[1] as string);
    if (!missing(role)) {
      out.existing.push(role);
      return "drop";
    }
    out.created.push(role);
    return "keep";
  }
  if ((m = ABOUT_ROLE.exec(stmt)) !== null) {
    const role = identName(m[1] as string);
    if (mode === "missingRoles") return missing(role) ? "keep" : "drop";
    return role === cluster.currentUser && /^ALTER/i.test(stmt) ? "dropPassword" : "keep";
  }
  if ((m = MEMBERSHIP.exec(stmt)) !== null) {
    if (mode === "all") return "keep";
    return missing(identName(m[1] as string)) || missing(identName(m[2] as string)) ? "keep" : "drop";
  }
  if ((m = CREATE_TABLESPACE.exec(stmt)) !== null) {
    const name = identName(m[1] as string);
    if (cluster.tablespaces.has(name)) out.existing.push(`tablespace ${name}`);
    return mode === "all" && !cluster.tablespaces.has(name) ? "keep" : "drop";
  }
  return mode === "all" || SESSION_SETUP.test(stmt) ? "keep" : "drop";
}

/** The pieces as one buffer, without a copy when there is one piece (most chunks of a large globals part). */
function joined(out: Buffer[]): Buffer {
  return out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
}

/** Keeps the newlines of a left-out piece, so line numbers stay the file's. */
function newlinesOf(piece: Buffer): Buffer {
  let n = 0;
  for (let at = piece.indexOf(NL); at >= 0; at = piece.indexOf(NL, at + 1)) n++;
  return Buffer.alloc(n, NL);
}

/** The globals filter as a stream: push() the globals as they are read, write what it returns to psql. */
export class GlobalsFilter {
  readonly created: string[] = [];
  readonly existing: string[] = [];
  private readonly st = newScanState();
  /** A line not yet ended, in the pieces it came in. */
  private carry: Buffer[] = [];
  private carryBytes = 0;
  /** The open statement's bytes, from its first token; null between statements. */
  private stmt: Buffer[] | null = null;
  private stmtBytes = 0;
  /** The verdict on an open statement too long to hold, applied to the rest of it as it comes. */
  private streaming: Verdict | null = null;
  private readonly cuts: { pos: number; start: boolean }[] = [];
  /** The line being scanned is pg_dumpall's own \restrict or \unrestrict line. */
  private keyed = false;
  private scanned: Buffer = Buffer.alloc(0);
  private readonly events = {
    start: (p: number) => void this.cuts.push({ pos: p, start: true }),
    end: (p: number) => void this.cuts.push({ pos: p + 1, start: false }),
    meta: (p: number) => void (this.keyed = p === 0 && this.stmt === null && KEYED.test(this.scanned.toString("latin1", 0, 256))),
  };

  constructor(
    private readonly mode: GlobalsMode,
    private readonly cluster: ClusterGlobals,
  ) {}

  push(chunk: Buffer): Buffer {
    const out: Buffer[] = [];
    let pos = 0;
    // Lines between statements with no statement in them (comments, blank lines) pass as one run.
    let run = 0;
    for (let nl = chunk.indexOf(NL); nl >= 0; nl = chunk.indexOf(NL, pos)) {
      if (this.carryBytes === 0) {
        const line = chunk.subarray(pos, nl + 1);
        this.scan(line);
        if (this.cuts.length > 0 || this.stmt !== null || this.keyed) {
          out.push(chunk.subarray(run, pos));
          this.line(line, out);
          run = nl + 1;
        }
      } else {
        const line = Buffer.concat([...this.carry, chunk.subarray(pos, nl + 1)]);
        [this.carry, this.carryBytes] = [[], 0];
        this.scan(line);
        this.line(line, out);
        run = nl + 1;
      }
      pos = nl + 1;
    }
    out.push(chunk.subarray(run, pos));
    if (pos < chunk.length) {
      this.carryBytes += chunk.length - pos;
      if (this.carryBytes > MAX_LINE) throw new Error(`the globals have a line longer than ${MAX_LINE} bytes, the most a restore scans as one line`);
      this.carry.push(chunk.subarray(pos));
    }
    return joined(out.filter((b) => b.length > 0));
  }

  end(): Buffer {
    const out: Buffer[] = [];
    if (this.carryBytes > 0) {
      const line = Buffer.concat(this.carry);
      this.scan(line);
      this.line(line, out);
    }
    [this.carry, this.carryBytes] = [[], 0];
    if (this.stmt !== null) this.finish(out);
    return joined(out.filter((b) => b.length > 0));
  }

  /** Where statements start and end in the line, into this.cuts; whether it is a keyed line, into this.keyed. */
  private scan(line: Buffer): void {
    this.cuts.length = 0;
    this.keyed = false;
    this.scanned = line;
    scanLine(line, this.st, this.events);
  }

  /** Hands on one scanned line: text between statements as it is, statements as judged, a keyed line as its newline. */
  private line(line: Buffer, out: Buffer[]): void {
    if (this.keyed) return void out.push(newlinesOf(line));
    let at = 0;
    for (const cut of this.cuts) {
      if (cut.start) {
        out.push(line.subarray(at, cut.pos));
        [this.stmt, this.stmtBytes] = [[], 0];
      } else {
        this.add(line.subarray(at, cut.pos), out);
        this.finish(out);
      }
      at = cut.pos;
    }
    if (this.stmt === null) out.push(line.subarray(at));
    else this.add(line.subarray(at), out);
  }

  private add(piece: Buffer, out: Buffer[]): void {
    if (this.streaming !== null) return void out.push(this.apply(this.streaming, piece));
    const stmt = this.stmt as Buffer[];
    stmt.push(piece);
    this.stmtBytes += piece.length;
    if (this.stmtBytes <= MAX_HELD) return;
    const head = Buffer.concat(stmt).toString("latin1", 0, WINDOW);
    const verdict = judge(head, this.mode, this.cluster, this);
    if (verdict === "dropPassword") throw new Error(`the globals hold an ALTER ROLE of ${this.cluster.currentUser} longer than ${MAX_HELD} bytes: ${head.slice(0, 80)}`);
    this.streaming = verdict;
    for (const p of stmt) out.push(this.apply(verdict, p));
    this.stmt = [];
  }

  private apply(verdict: Verdict, piece: Buffer): Buffer {
    return verdict === "keep" ? piece : newlinesOf(piece);
  }

  private finish(out: Buffer[]): void {
    const held = this.stmt as Buffer[];
    [this.stmt, this.stmtBytes] = [null, 0];
    if (this.streaming !== null) return void (this.streaming = null);
    const bytes = Buffer.concat(held);
    const stmt = bytes.toString("latin1");
    const verdict = judge(stmt, this.mode, this.cluster, this);
    if (verdict === "keep") out.push(bytes);
    else out.push(verdict === "drop" ? newlinesOf(bytes) : Buffer.from(stmt.replace(PASSWORD, ""), "latin1"));
  }
}
