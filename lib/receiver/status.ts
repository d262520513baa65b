// What `status` says about wal-receive, from its last report in METRICS_FILE: whether
// pg_receivewal runs, how far behind it is, and whether the report itself is fresh (a stale
// one means the service is gone, whatever the report says). Without METRICS_FILE, from the
// server: the slot's confirmed position against the server's.
import type { Config } from "../config/config.js";
import type { WalReceiverMetrics } from "../core/metrics.js";
import { localTime } from "../core/format.js";
import { withClient } from "../postgres/connection.js";
import { formatLsn } from "../physical/layout.js";
import { serverFlushLsn, slotState } from "./slot.js";

/** A report older than this is stale: the receiver reports every status interval (5 s by default). */
const STALE_SECONDS = 120;

/** One line for people. Pure. */
export function formatWalReceiver(w: WalReceiverMetrics, now: Date, tz: string): string {
  const age = Math.max(0, Math.round(now.getTime() / 1000 - w.updatedAt));
  const state = age > STALE_SECONDS ? `NOT REPORTING for ${age} s (is the wal-receive service running?)` : w.running ? "running" : "DOWN (restarting)";
  const received = w.lastReceivedAt === null ? "nothing received yet" : `last received ${w.lsn ?? "?"} at ${localTime(new Date(w.lastReceivedAt * 1000), tz)}`;
  return `WAL receiver (slot ${w.slot}): ${state}; lag ${w.lagSeconds} s${w.lagBytes === null ? "" : ` (${w.lagBytes} bytes)`}; ${received}; ${w.restarts} restart(s)`;
}

export interface SlotStatus {
  slot: string;
  exists: boolean;
  /** A receiver is connected to the slot. */
  active: boolean;
  lsn: string | null;
  lagBytes: number | null;
}

/** The slot as the server sees it; null when the server cannot be asked at once (status does not wait for it). */
export async function slotStatus(config: Config): Promise<SlotStatus | null> {
  const slot = config.wal.slot;
  try {
    return await withClient({ ...config.pg, connectTimeoutSeconds: 0 }, config.pg.database, async (c) => {
      const [s, server] = [await slotState(c, slot), await serverFlushLsn(c)];
      if (s === null) return { slot, exists: false, active: false, lsn: null, lagBytes: null };
      const lagBytes = s.restartLsn === null || server === null ? null : Number(server > s.restartLsn ? server - s.restartLsn : 0n);
      return { slot, exists: true, active: s.active, lsn: s.restartLsn === null ? null : formatLsn(s.restartLsn), lagBytes };
    });
  } catch {
    return null;
  }
}

/** One line for people. Pure. */
export function formatSlotStatus(s: SlotStatus): string {
  if (!s.exists) return `WAL receiver (slot ${s.slot}, from the server): the slot does not exist; is the wal-receive service running?`;
  const state = s.active ? "receiving" : "NOT CONNECTED (is the wal-receive service running?)";
  return `WAL receiver (slot ${s.slot}, from the server): ${state}; flushed up to ${s.lsn ?? "nothing yet"}${s.lagBytes === null ? "" : `, ${s.lagBytes} bytes behind`} (set METRICS_FILE for the lag in seconds)`;
}
