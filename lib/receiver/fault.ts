// What a pg_receivewal exit means for its supervisor: restart it (the connection dropped,
// the server restarted), recreate the slot first, or stop with an error an operator can act
// on. Decided from the exit's stderr alone, so it is pure and table-tested.

export type ReceiverFault =
  /** The role lacks REPLICATION or pg_hba has no `replication` line: retrying cannot help. */
  | "no-permission"
  /** The slot is gone (dropped, or invalidated by max_slot_wal_keep_size): recreate it. */
  | "slot-missing"
  /** The server no longer has the WAL the receiver would continue from: a gap in wal/. */
  | "wal-removed"
  /**
   * pg_receivewal 15 asked to start exactly at a timeline's switch point (a fork on a segment
   * boundary): the server answers with the next timeline instead of WAL, and it gives up with
   * an empty message. It cannot resume from wal/ then, like "wal-removed".
   */
  | "switch-point"
  /** The archive's newest WAL is not in the server's history (it was restored to an earlier point). */
  | "foreign-timeline"
  | "storage-full"
  | "compression-unsupported"
  /** Anything else (connection lost, server restarting): restart with backoff. */
  | "transient";

const RULES: [RegExp, ReceiverFault][] = [
  [/must be superuser or replication role|permission denied to start WAL sender|no pg_hba\.conf entry for replication connection|pg_hba\.conf rejects replication connection/i, "no-permission"],
  [/replication slot "[^"]*" does not exist|can no longer get changes from replication slot|This slot has been invalidated/i, "slot-missing"],
  [/requested WAL segment \S+ has already been removed/i, "wal-removed"],
  [/could not send replication command "START_REPLICATION": *(\n|$)/, "switch-point"],
  [/is not in this server's history|server reported unexpected history file name|starting point .* is ahead of the WAL flush position/i, "foreign-timeline"],
  [/No space left on device|Disk quota exceeded/i, "storage-full"],
  [/this build does not support (compression with )?(LZ4|gzip)|unrecognized compression (algorithm|method)|compression method .* not supported/i, "compression-unsupported"],
];

export function classifyReceiverExit(stderr: string): ReceiverFault {
  for (const [re, fault] of RULES) if (re.test(stderr)) return fault;
  return "transient";
}

/** Restart delay: 1 s doubling to 30 s; a run that lasted a minute starts the count again. Pure. */
export function restartDelayMs(failuresInARow: number): number {
  return Math.min(30_000, 1000 * 2 ** Math.max(0, failuresInARow - 1));
}

/** A run this long counts as healthy: the next failure restarts after the shortest delay. */
export const HEALTHY_RUN_MS = 60_000;
