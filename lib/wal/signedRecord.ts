// With BACKUP_VERIFY_KEY_FILE, which WAL a restore may use: every segment it stages and every
// history file it follows must carry a valid signature for the base backup's cluster, and
// every timeline it replays must be in the signed record — a timeline enters it only through
// its signed history file, so WAL of a timeline someone made elsewhere (a copy of the base
// backup recovered and promoted) is refused by name. The decision is pure (signedWalProblem);
// checkSignedWal gathers the signature files' verdicts for it. The bytes themselves are
// checked against the signatures in the read that stages them (readFile.ts).
import type { KeyObject } from "node:crypto";
import { join } from "node:path";
import { parseWalName, walStem } from "../physical/layout.js";
import { historyName } from "./timelineHistory.js";
import { UntrustedWal, readWalStatement, untrusted } from "./readFile.js";
import type { WalStatement } from "./signature.js";

export interface SignedWalInput {
  /** The base backup's timeline and cluster. */
  baseTimeline: number;
  systemIdentifier: string;
  /** The segment files the plan stages, each with its verified statement or why it has none. */
  segments: readonly { name: string; statement: WalStatement | null; problem: string | null }[];
  /** The history files the plan stages, with the statement their read verified (null: unsigned, `untrusted` saying why). */
  histories: readonly { name: string; statement: WalStatement | null; untrusted?: string | null }[];
}

/** The first reason the plan's WAL cannot be trusted, naming the file; null when all of it is signed. Pure. */
export function signedWalProblem(input: SignedWalInput): string | null {
  const signedTimelines = new Set<number>();
  for (const h of input.histories) {
    if (h.statement === null) return h.untrusted ?? `timeline history file ${h.name} is not signed`;
    if (h.statement.systemIdentifier !== input.systemIdentifier) {
      return `timeline history file ${h.name} was signed for the cluster with system identifier ${h.statement.systemIdentifier}, not ${input.systemIdentifier} (the base backup's): WAL of another cluster`;
    }
    const f = parseWalName(h.name);
    if (f?.kind === "history") signedTimelines.add(f.timeline);
  }
  for (const s of input.segments) {
    if (s.problem !== null) return s.problem;
    if (s.statement === null) return `WAL segment ${s.name} is not signed`;
    const f = parseWalName(s.name);
    if (f?.kind !== "segment") return `${s.name} is not a WAL segment`;
    if (f.timeline !== input.baseTimeline && !signedTimelines.has(f.timeline)) {
      return `WAL segment ${s.name} is on timeline ${f.timeline}, which the signed record does not contain (no signed ${historyName(f.timeline)}): a timeline made outside this archive`;
    }
  }
  return null;
}

/** Reads and checks one WAL file's signature (its name as stored; the key; the base backup's cluster): the statement, or a refusal. */
export type StatementReader = (name: string, key: KeyObject, systemIdentifier: string) => Promise<WalStatement>;

/** The signatures beside the files in `dir` (BACKUP_DIR/wal). */
export function statementsIn(dir: string): StatementReader {
  return (name, key, systemIdentifier) => readWalStatement(join(dir, name), key, systemIdentifier);
}

/**
 * Reads the signature of each segment the plan stages (`read`: from wal/ or the bucket) and
 * decides with signedWalProblem; throws the refusal (exit 4) naming the first file that fails.
 */
export async function checkSignedWal(
  read: StatementReader,
  key: KeyObject,
  plan: { segments: readonly { source: string }[]; baseTimeline: number; systemIdentifier: string },
  histories: readonly { name: string; statement: WalStatement | null; untrusted?: string | null }[],
): Promise<void> {
  const segments = [];
  for (const s of plan.segments) {
    try {
      segments.push({ name: s.source, statement: await read(s.source, key, plan.systemIdentifier), problem: null });
    } catch (err) {
      if (!(err instanceof UntrustedWal)) throw err;
      segments.push({ name: s.source, statement: null, problem: err.problem });
      break;
    }
  }
  const problem = signedWalProblem({ baseTimeline: plan.baseTimeline, systemIdentifier: plan.systemIdentifier, segments, histories });
  if (problem !== null) throw untrusted(problem);
}

/** The stems (24-hex segment or NNNNNNNN.history) of encrypted files among `names`. Pure. */
export function encryptedAmong(names: readonly string[]): string[] {
  return names.flatMap((n) => {
    const f = parseWalName(n);
    return f !== null && f.kind !== "backup-label" && f.encrypted === true ? [walStem(f)] : [];
  });
}
