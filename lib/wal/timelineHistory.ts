// A timeline history file (NNNNNNNN.history) names, for each ancestor timeline, the LSN where
// the next timeline branched off. Recovery follows it across a failover or a restore, and so
// does the gap check: segments before a switch point come from the parent timeline.
import { parseLsn } from "../physical/layout.js";

export interface TimelineSwitch {
  parentTimeline: number;
  /** The first LSN that belongs to the child timeline. */
  switchLsn: bigint;
  reason: string;
}

/** Ancestors oldest first, as in the file. */
export type TimelineHistory = TimelineSwitch[];

/** Parses the file's text; blank lines and # comments are skipped as PostgreSQL does. Throws on a malformed line. */
export function parseTimelineHistory(text: string): TimelineHistory {
  const out: TimelineHistory = [];
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(\d+)\s+([0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8})(?:\s+(.*))?$/.exec(line);
    const lsn = m === null ? null : parseLsn(m[2] as string);
    if (m === null || lsn === null) throw new Error(`line ${i + 1} is not "<timeline> <LSN> <reason>": ${JSON.stringify(line.slice(0, 80))}`);
    const parentTimeline = Number(m[1]);
    const previous = out.at(-1);
    if (previous !== undefined && (parentTimeline <= previous.parentTimeline || lsn < previous.switchLsn)) {
      throw new Error(`line ${i + 1}: timelines and switch points must ascend`);
    }
    out.push({ parentTimeline, switchLsn: lsn, reason: m[3] ?? "" });
  }
  return out;
}

/** The file name of timeline `tli`'s history. */
export function historyName(tli: number): string {
  return `${tli.toString(16).toUpperCase().padStart(8, "0")}.history`;
}
