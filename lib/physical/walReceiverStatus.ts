// What `status` says about wal-receive, from its last report in METRICS_FILE: whether
// pg_receivewal runs, how far behind it is, and whether the report itself is fresh (a stale
// one means the service is gone, whatever the report says).
import type { WalReceiverMetrics } from "../core/metrics.js";
import { localTime } from "../core/format.js";

/** A report older than this is stale: the receiver reports every status interval (5 s by default). */
const STALE_SECONDS = 120;

/** One line for people. Pure. */
export function formatWalReceiver(w: WalReceiverMetrics, now: Date, tz: string): string {
  const age = Math.max(0, Math.round(now.getTime() / 1000 - w.updatedAt));
  const state = age > STALE_SECONDS ? `NOT REPORTING for ${age} s (is the wal-receive service running?)` : w.running ? "running" : "DOWN (restarting)";
  const received = w.lastReceivedAt === null ? "nothing received yet" : `last received ${w.lsn ?? "?"} at ${localTime(new Date(w.lastReceivedAt * 1000), tz)}`;
  return `WAL receiver (slot ${w.slot}): ${state}; lag ${w.lagSeconds} s${w.lagBytes === null ? "" : ` (${w.lagBytes} bytes)`}; ${received}; ${w.restarts} restart(s)`;
}
