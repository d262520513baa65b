// The manifest written beside every backup (<name>.json). Readers trust a backup only
// when its manifest parses and matches its name; everything else is "invalid".
import { readFile } from "node:fs/promises";
import type { Codec } from "../core/codec.js";
import type { Tier } from "./naming.js";
import { TIERS } from "./naming.js";

export const MANIFEST_FORMAT = 1;

/** Per-database change fingerprint, taken before the dump starts (see lib/backup/fingerprint.ts). */
export interface DatabaseFingerprint {
  oid: number;
  /** Hash over per-table write counters, sequence positions and the stats reset time. */
  hash: string;
}

export interface Fingerprint {
  /** Hash of the shared catalogs: roles, memberships, role settings, tablespaces, database list/ACLs. */
  globals: string;
  /** Changes when the statistics system lost its counters (crash restart, reset of shared stats). */
  statsEpoch: string;
  databases: Record<string, DatabaseFingerprint>;
}

export interface Manifest {
  format: number;
  tool: { name: string; version: string };
  name: string;
  tier: Tier;
  /** The backup this one is relative to: null for a full; the full for a differential; the newest backup for an incremental. */
  parent: string | null;
  startedAt: string;
  finishedAt: string;
  serverVersion: string;
  pgDumpVersion: string;
  systemIdentifier: string;
  compression: { codec: Codec; program: string; level: number | null };
  rawBytes: number;
  compressedBytes: number;
  sha256: string;
  fingerprint: Fingerprint;
  /** Every database that existed when the backup started (template0 excluded). */
  databases: string[];
  /** The databases whose sections this file holds. */
  included: string[];
  /** Rows per table as counted in the dump stream: rowCounts[db]["schema.table"]. */
  rowCounts: Record<string, Record<string, number>>;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Checks the shape a reader relies on; returns the reason it is unusable, or null. */
export function manifestProblem(m: unknown, expectedName?: string): string | null {
  if (!isObject(m)) return "manifest is not a JSON object";
  if (m.format !== MANIFEST_FORMAT) return `unsupported manifest format ${String(m.format)}`;
  if (typeof m.name !== "string") return "manifest has no name";
  if (expectedName !== undefined && m.name !== expectedName) {
    return `manifest names "${m.name}", not "${expectedName}"`;
  }
  if (!TIERS.includes(m.tier as Tier)) return `manifest has unknown tier ${String(m.tier)}`;
  if (typeof m.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(m.sha256)) return "manifest has no sha256";
  if (typeof m.startedAt !== "string" || Number.isNaN(Date.parse(m.startedAt))) return "manifest has no startedAt";
  if (!Array.isArray(m.databases) || !Array.isArray(m.included)) return "manifest lacks database lists";
  if (!isObject(m.fingerprint)) return "manifest has no fingerprint";
  return null;
}

export async function readManifest(path: string, expectedName?: string): Promise<Manifest> {
  const text = await readFile(path, "utf8");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path} is not valid JSON; the backup is unusable until it is rewritten or removed`, { cause: err });
  }
  const problem = manifestProblem(parsed, expectedName);
  if (problem !== null) throw new Error(`${path}: ${problem}`);
  return parsed as Manifest;
}
