// Backup file names: YYYYMMDD_HHMMSS_<tier>.sql[.<ext>], the timestamp in UTC so names
// sort in time order and never collide across a DST change.
import { CODECS } from "../core/codec.js";
import type { Codec } from "../core/codec.js";

export const TIERS = ["full", "differential", "incremental"] as const;
export type Tier = (typeof TIERS)[number];

const EXTENSIONS: Record<Codec, string> = { bzip2: ".bz2", zstd: ".zst", gzip: ".gz", none: "" };

export const PARTIAL_SUFFIX = ".partial";
export const CHECKSUM_SUFFIX = ".sha256";
export const MANIFEST_SUFFIX = ".json";
/** The Ed25519 signature over the exact bytes of the .sha256 file (which covers data and manifest). */
export const SIGNATURE_SUFFIX = CHECKSUM_SUFFIX + ".sig";
/** Every file beside a backup that belongs to it. */
export const SIDECAR_SUFFIXES = [CHECKSUM_SUFFIX, SIGNATURE_SUFFIX, MANIFEST_SUFFIX] as const;

/** After the codec's extension: the file is age-encrypted (docs/security.md "Encryption at rest"). */
export const ENCRYPTED_SUFFIX = ".age";

const NAME_RE = /^(\d{8})_(\d{6})_(full|differential|incremental)\.sql(\.bz2|\.zst|\.gz)?(\.age)?$/;

export interface ParsedName {
  name: string;
  tier: Tier;
  time: Date;
  codec: Codec;
  encrypted: boolean;
}

export function extensionOf(codec: Codec): string {
  return EXTENSIONS[codec];
}

export function codecOfExtension(ext: string): Codec {
  const found = CODECS.find((c) => EXTENSIONS[c] === ext);
  if (found === undefined) throw new Error(`unknown backup file extension "${ext}"`);
  return found;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

export function utcStamp(date: Date): string {
  return (
    `${date.getUTCFullYear()}${pad(date.getUTCMonth() + 1)}${pad(date.getUTCDate())}_` +
    `${pad(date.getUTCHours())}${pad(date.getUTCMinutes())}${pad(date.getUTCSeconds())}`
  );
}

function suffix(codec: Codec, encrypted: boolean): string {
  return `.sql${EXTENSIONS[codec]}${encrypted ? ENCRYPTED_SUFFIX : ""}`;
}

export function backupName(tier: Tier, startedAt: Date, codec: Codec, encrypted = false): string {
  return `${utcStamp(startedAt)}_${tier}${suffix(codec, encrypted)}`;
}

/** latest_<tier>.sql.<ext>[.age]: one pointer per tier and file format, so its name tells the stock command that reads it. */
export function latestPointerName(tier: Tier, codec: Codec, encrypted = false): string {
  return `latest_${tier}${suffix(codec, encrypted)}`;
}

export function parseBackupName(name: string): ParsedName | null {
  const m = NAME_RE.exec(name);
  if (m === null) return null;
  const [, day, clock, tier, ext, age] = m as unknown as [string, string, string, Tier, string | undefined, string | undefined];
  const time = new Date(
    Date.UTC(
      Number(day.slice(0, 4)),
      Number(day.slice(4, 6)) - 1,
      Number(day.slice(6, 8)),
      Number(clock.slice(0, 2)),
      Number(clock.slice(2, 4)),
      Number(clock.slice(4, 6)),
    ),
  );
  if (Number.isNaN(time.getTime()) || utcStamp(time) !== `${day}_${clock}`) return null;
  return { name, tier, time, codec: codecOfExtension(ext ?? ""), encrypted: age !== undefined };
}
