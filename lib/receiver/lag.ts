// The receiver's lag in seconds, from the positions the supervisor polls: the server's
// flushed WAL position sampled over time, and the receiver's flushed position (the slot's
// restart_lsn). The WAL the receiver lacks was written after the last sample at or below
// its position, so the lag is the time since that sample; caught up, it is 0. Bytes alone
// would say nothing to an operator who thinks in recovery point seconds.

export interface ServerSample {
  at: number;
  /** The server's flushed WAL position at `at`. */
  lsn: bigint;
}

/** Keeps the samples a later lag can still need: from the newest one at or below `received` on. Pure. */
export function pruneSamples(samples: readonly ServerSample[], received: bigint): ServerSample[] {
  let from = 0;
  for (let i = 0; i < samples.length; i++) if ((samples[i] as ServerSample).lsn <= received) from = i;
  return samples.slice(from);
}

/**
 * Seconds since the server last had nothing the receiver lacks. `samples` oldest first; the
 * newest is "now". Without a sample at or below `received` (the receiver is behind the oldest
 * kept one), the oldest sample's time bounds the lag from below. Pure.
 */
export function lagSeconds(samples: readonly ServerSample[], received: bigint | null, now: number): number {
  const newest = samples.at(-1);
  if (newest === undefined) return 0;
  if (received !== null && received >= newest.lsn) return 0;
  let caughtUp: ServerSample | undefined = samples[0];
  if (received !== null) for (const s of samples) if (s.lsn <= received) caughtUp = s;
  return Math.max(0, (now - (caughtUp as ServerSample).at) / 1000);
}
