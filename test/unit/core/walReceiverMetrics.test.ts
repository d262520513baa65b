// wal-receive's series in the textfile (issue 19).
import { describe, expect, it } from "vitest";
import { emptyState, formatMetrics } from "../../../lib/core/metrics.js";

describe("formatMetrics with wal-receive's report", () => {
  it("writes the receiver's gauges and restart counter, labelled by slot", () => {
    const text = formatMetrics({
      ...emptyState(),
      walReceiver: { slot: "pg_swarm_backup", lsn: "0/3000148", lsnBytes: 0x3000148, lastReceivedAt: 1_764_430_000, lagSeconds: 1.5, lagBytes: 4096, restarts: 2, running: true, updatedAt: 1_764_430_001 },
    });
    expect(text).toContain('pgsb_wal_receive_up{slot="pg_swarm_backup"} 1\n');
    expect(text).toContain(`pgsb_wal_receive_lsn_bytes{slot="pg_swarm_backup"} ${0x3000148}\n`);
    expect(text).toContain('pgsb_wal_receive_lag_seconds{slot="pg_swarm_backup"} 1.5\n');
    expect(text).toContain('# TYPE pgsb_wal_receive_restarts_total counter\npgsb_wal_receive_restarts_total{slot="pg_swarm_backup"} 2\n');
    expect(text).toContain('pgsb_wal_receive_updated_timestamp_seconds{slot="pg_swarm_backup"} 1764430001\n');
  });
  it("leaves out what is not known yet", () => {
    const text = formatMetrics({
      ...emptyState(),
      walReceiver: { slot: "s", lsn: null, lsnBytes: null, lastReceivedAt: null, lagSeconds: 0, lagBytes: null, restarts: 0, running: false, updatedAt: 1 },
    });
    expect(text).not.toContain("pgsb_wal_receive_lsn_bytes");
    expect(text).toContain('pgsb_wal_receive_up{slot="s"} 0\n');
  });
  it("with S3: the bucket's lag, pending and refused files, the failure counter and the last upload", () => {
    const base = { slot: "s", lsn: null, lsnBytes: null, lastReceivedAt: null, lagSeconds: 0, lagBytes: null, restarts: 0, running: true, updatedAt: 1 };
    const text = formatMetrics({ ...emptyState(), walReceiver: { ...base, s3: { ok: false, lagSeconds: 42.5, pendingFiles: 3, failures: 7, refusedFiles: 1, lastUploadAt: null } } });
    expect(text).toContain('pgsb_wal_receive_s3_up{slot="s"} 0\n');
    expect(text).toContain('pgsb_wal_receive_s3_lag_seconds{slot="s"} 42.5\n');
    expect(text).toContain('pgsb_wal_receive_s3_pending_files{slot="s"} 3\n');
    expect(text).toContain('# TYPE pgsb_wal_receive_s3_failures_total counter\npgsb_wal_receive_s3_failures_total{slot="s"} 7\n');
    expect(text).toContain('pgsb_wal_receive_s3_refused_files{slot="s"} 1\n');
    expect(text).not.toContain("pgsb_wal_receive_s3_last_upload_timestamp_seconds");
    expect(formatMetrics({ ...emptyState(), walReceiver: base })).not.toContain("pgsb_wal_receive_s3");
  });
  it("writes nothing of the receiver when it never ran", () => {
    expect(formatMetrics(emptyState())).not.toContain("pgsb_wal_receive");
  });
});
