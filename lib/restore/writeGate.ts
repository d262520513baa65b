// The write gate: a freshly initialised cluster starts with default_transaction_read_only
// = on (set by ALTER SYSTEM from stack/initdb/10-write-gate.sh), so applications fail
// loudly instead of writing into an empty database before auto-restore has run. Restore
// sessions pass the gate with a per-session override; auto-restore lifts it for everyone.
// By hand: ALTER SYSTEM RESET default_transaction_read_only; SELECT pg_reload_conf();
import type { PgConfig } from "../config/config.js";
import type { Logger } from "../core/log.js";
import type { Client } from "../postgres/connection.js";
import { connect } from "../postgres/connection.js";

export const LIFT_BY_HAND = "ALTER SYSTEM RESET default_transaction_read_only; SELECT pg_reload_conf();";

/** A startup option, not a SET: every \connect in a restore script opens a new session, and each one must pass the gate. */
const GATE_OFF_OPTION = "-c default_transaction_read_only=off";

/** Environment for psql children that write: the gate override added to PGOPTIONS. */
export function writableEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const options = env.PGOPTIONS === undefined || env.PGOPTIONS === "" ? GATE_OFF_OPTION : `${env.PGOPTIONS} ${GATE_OFF_OPTION}`;
  return { ...env, PGOPTIONS: options };
}

/** A connection whose transactions may write even behind the gate. */
export async function connectWritable(cfg: PgConfig, database: string, log?: Logger): Promise<Client> {
  const client = await connect(cfg, database, log);
  try {
    await client.query("SET default_transaction_read_only = off");
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  return client;
}

/** Whether new sessions start read-only; ask on a connection that has not overridden it. */
export async function gateIsSet(client: Client): Promise<boolean> {
  const r = await client.query<{ on: boolean }>("SELECT current_setting('default_transaction_read_only') = 'on' AS on");
  return r.rows[0]?.on === true;
}

/** Lifts the gate cluster-wide: ALTER SYSTEM and a configuration reload, which running sessions pick up too. */
export async function liftGate(client: Client): Promise<void> {
  await client.query("ALTER SYSTEM RESET default_transaction_read_only");
  await client.query("SELECT pg_reload_conf()");
}
