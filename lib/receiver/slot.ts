// The queries wal-receive runs beside pg_receivewal: the slot's state, the server's flushed
// WAL position (to measure the lag), the role's REPLICATION attribute, and dropping a slot
// that max_slot_wal_keep_size invalidated. One small named query each.
import type { Client } from "../postgres/connection.js";
import { parseLsn } from "../physical/layout.js";

export interface SlotState {
  /** The receiver's flushed position as the server knows it; null before the first report. */
  restartLsn: bigint | null;
  /** reserved | extended | unreserved | lost (PostgreSQL 13+); "lost": invalidated by max_slot_wal_keep_size. */
  walStatus: string | null;
  active: boolean;
  physical: boolean;
}

/** Null when there is no slot of that name. */
export async function slotState(client: Client, slot: string): Promise<SlotState | null> {
  const r = await client.query<{ restart_lsn: string | null; wal_status: string | null; active: boolean; slot_type: string }>(
    "SELECT restart_lsn::text, wal_status, active, slot_type FROM pg_replication_slots WHERE slot_name = $1",
    [slot],
  );
  const row = r.rows[0];
  if (row === undefined) return null;
  return { restartLsn: row.restart_lsn === null ? null : parseLsn(row.restart_lsn), walStatus: row.wal_status, active: row.active, physical: row.slot_type === "physical" };
}

/** The position up to which the server can send WAL: its flush position, or on a standby what it received. */
export async function serverFlushLsn(client: Client): Promise<bigint | null> {
  const r = await client.query<{ lsn: string | null }>(
    "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_flush_lsn() END)::text AS lsn",
  );
  const text = r.rows[0]?.lsn ?? null;
  return text === null ? null : parseLsn(text);
}

/** Whether the connected role may open replication connections (REPLICATION or superuser). */
export async function canReplicate(client: Client): Promise<boolean> {
  const r = await client.query<{ ok: boolean }>("SELECT rolreplication OR rolsuper AS ok FROM pg_roles WHERE rolname = current_user");
  return r.rows[0]?.ok === true;
}

export async function dropSlot(client: Client, slot: string): Promise<void> {
  await client.query("SELECT pg_drop_replication_slot($1)", [slot]);
}

/** A fresh physical slot that reserves nothing yet: pg_receivewal in an empty folder then starts at the server's position. */
export async function recreateSlot(client: Client, slot: string): Promise<void> {
  await client.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", [slot]);
  await client.query("SELECT pg_create_physical_replication_slot($1)", [slot]);
}

/** The cluster wal-receive signs WAL for, and its segment size (a bound for reading the spool). */
export async function clusterIdentity(client: Client): Promise<{ systemIdentifier: string; walSegmentSize: number }> {
  const r = await client.query<{ id: string; size: string }>(
    "SELECT system_identifier::text AS id, (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') AS size FROM pg_control_system()",
  );
  const row = r.rows[0];
  if (row === undefined) throw new Error("pg_control_system() returned no row");
  return { systemIdentifier: row.id, walSegmentSize: Number(row.size) };
}
