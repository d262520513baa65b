// What `list` shows of the base backups: time, size, the WAL they start and end at, and why
// one is unusable. (The WAL range line is wal-receive's part.)
import { humanBytes, localTime, table } from "../core/format.js";
import { scanBaseCatalog } from "./catalog.js";

export interface ListedBase {
  name: string;
  time: string;
  localTime: string;
  bytes: number;
  startLsn: string | null;
  stopLsn: string | null;
  timeline: number | null;
  problem: string | null;
}

export async function listBases(backupDir: string, tz: string): Promise<ListedBase[]> {
  return (await scanBaseCatalog(backupDir)).map((e) => ({
    name: e.name,
    time: e.time.toISOString(),
    localTime: localTime(e.time, tz),
    bytes: e.bytes,
    startLsn: e.manifest?.startLsn ?? null,
    stopLsn: e.manifest?.stopLsn ?? null,
    timeline: e.manifest?.timeline ?? null,
    problem: e.problem,
  }));
}

export function formatBases(bases: readonly ListedBase[], tz: string): string {
  const rows = [["BASE", `TIME (${tz})`, "SIZE", "START LSN", "STOP LSN", "TL", "PROBLEM", "NAME"]];
  for (const b of bases) rows.push(["base", b.localTime, humanBytes(b.bytes), b.startLsn ?? "-", b.stopLsn ?? "-", b.timeline === null ? "-" : String(b.timeline), b.problem === null ? "ok" : `unusable: ${b.problem}`, b.name]);
  return table(rows);
}
