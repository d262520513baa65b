// restore-pitr --source s3: the plan made from the bucket, with BACKUP_DIR empty or gone. The
// base backups' sidecars are fetched and checked first (with a verify key, the signature
// before a manifest steers anything); the history files of the chosen base backup's timeline
// and later are fetched, checked and parsed once; the WAL's times come from the listing and,
// where they matter, the objects' metadata (walTimes.ts). Only then are the planned segments'
// signatures read, and after the dry run the base backup is downloaded into a private folder
// in TMPDIR (baseDownload.ts) and the segments fetched one by one as they are staged.
// A base backup in the bucket that does not verify and is newer than the one the plan would
// use is never passed over quietly: the restore is refused naming it (as restore-pitr refuses a
// local one), since someone who can write the bucket might otherwise roll the restore back.
import type { Config } from "../config/config.js";
import { mapLimit } from "../core/concurrency.js";
import { ExitCode, TaskError } from "../core/errors.js";
import { humanBytes } from "../core/format.js";
import type { Logger } from "../core/log.js";
import { parseLsn, parseWalName, segmentNumber, segmentOfLsn } from "../physical/layout.js";
import type { BaseManifest } from "../physical/layout.js";
import type { MirrorTarget } from "../s3/client.js";
import { keyPrefix, mirrorTarget, s3Failure, s3Url } from "../s3/client.js";
import { headObject } from "../s3/objects.js";
import { historiesByTimeline } from "../wal/archive.js";
import type { SegmentFile } from "../wal/archive.js";
import type { WalTrust } from "../wal/readFile.js";
import { baseFor, planPitr } from "../pitr/plan.js";
import type { PitrSource } from "../pitr/source.js";
import { listRemoteWal, MTIME_METADATA } from "../receiver/walUpload.js";
import type { RemoteWalObject } from "../receiver/walUpload.js";
import { BucketWal } from "./bucketWal.js";
import { downloadBase } from "./baseDownload.js";
import { listRemoteBases, readRemoteBases } from "./remoteBases.js";
import type { RemoteBaseEntry } from "./remoteBases.js";
import type { TimedSegment } from "./walTimes.js";
import { timeOf, timesToAsk } from "./walTimes.js";

/** The exact times the plan needs, asked of the bucket in batches (walTimes.ts decides which). */
async function settleTimes(t: MirrorTarget, timed: TimedSegment[], target: Date | null): Promise<number> {
  let asked = 0;
  for (let keys = timesToAsk(timed, target); keys.length > 0; keys = timesToAsk(timed, target)) {
    const heads = await mapLimit(keys, 8, (k) => headObject(t, k));
    keys.forEach((k, i) => {
      const s = timed.find((x) => x.key === k) as TimedSegment;
      const meta = Date.parse(heads[i]?.metadata[MTIME_METADATA] ?? "");
      // Metadata is written by whoever can write the bucket: never later than the upload itself.
      s.exact = new Date(Number.isNaN(meta) ? s.upper.getTime() : Math.min(meta, s.upper.getTime()));
    });
    asked += keys.length;
  }
  return asked;
}

type BucketSegment = TimedSegment & { file: SegmentFile };

function timedSegments(objects: readonly RemoteWalObject[], m: BaseManifest): BucketSegment[] {
  const start = segmentOfLsn(parseLsn(m.startLsn) ?? 0n, m.walSegmentSize);
  return objects.flatMap((o) => {
    const file = parseWalName(o.name);
    if (file?.kind !== "segment") return [];
    const n = segmentNumber(file.segment, m.walSegmentSize);
    return [{ key: o.key, file, timeline: file.timeline, n, upper: o.lastModified, exact: null, onPath: file.timeline >= m.timeline && n >= start, partial: file.partial }];
  });
}

/** The history files a restore from a base backup on `timeline` reads: its own timeline's and later ones (recovery asks for no older one). Pure. */
export function historiesToFetch<O extends Pick<RemoteWalObject, "name">>(objects: readonly O[], timeline: number): O[] {
  return objects.filter((o) => {
    const f = parseWalName(o.name);
    return f?.kind === "history" && f.timeline >= timeline;
  });
}

/** The refusal when the bucket holds a newer base backup that does not verify (see the top of this file), or null. */
function untrustedNewer(entries: readonly RemoteBaseEntry[], chosen: { name: string; manifest: { startedAt: string } }, target: Date | null): string | null {
  const newer = entries.find((e) => e.untrusted && e.time > new Date(chosen.manifest.startedAt) && (target === null || e.time < target));
  if (newer === undefined) return null;
  return `base backup ${newer.name} in the S3 mirror is newer than ${chosen.name} and does not verify (${newer.problem ?? "untrusted"}); restore-pitr does not pass over it quietly. Find out who wrote it and remove it from the bucket, or restore to a time before it with --at`;
}

/** `tmp`: where the base backup is downloaded (TMPDIR), in a private folder removed afterwards. */
export async function bucketSource(config: Config, target: Date | null, trust: WalTrust, tmp: string, log: Logger): Promise<PitrSource> {
  if (config.s3 === null) throw new TaskError(ExitCode.usage, "--source s3 needs the S3 mirror: set S3_BUCKET (and S3_ENDPOINT/S3_REGION, S3_PREFIX, the credentials) as the mirror's writers have them");
  const t = mirrorTarget(config.s3, log.child({ mirror: "s3" }));
  const where = `the S3 mirror ${s3Url(config.s3, keyPrefix(config.s3))}`;
  const [bases, wal] = await Promise.all([listRemoteBases(t), listRemoteWal(t)]).catch(async (err: unknown) => {
    throw await s3Failure(t.s3, t.client, `listing of ${where}`, err, ExitCode.failed);
  });
  const entries = await readRemoteBases(t, bases, trust.verifyKey);
  const chosen = baseFor(entries, target);
  if (chosen === null) {
    const why = entries.length === 0 ? "there is none" : `none is usable (${entries.map((b) => `${b.name}: ${b.problem ?? "no manifest"}`).join("; ")})`;
    throw new TaskError(ExitCode.refused, `restore-pitr --source s3 needs a base backup in ${s3Url(config.s3, `${keyPrefix(config.s3)}base/`)}, and ${why}; run \`backup base\` (it uploads to the mirror) or \`mirror\``);
  }
  const refusal = untrustedNewer(entries, chosen, target);
  if (refusal !== null) throw new TaskError(ExitCode.refused, refusal);
  const bucketWal = new BucketWal(t, log);
  const histories = await bucketWal.histories(historiesToFetch(wal, chosen.manifest.timeline), trust);
  const timed = timedSegments(wal, chosen.manifest);
  const heads = await settleTimes(t, timed, target).catch(async (err: unknown) => {
    throw await s3Failure(t.s3, t.client, `reading WAL times in ${where}`, err, ExitCode.failed);
  });
  let plan;
  try {
    const segments = timed.map((s) => ({ file: s.file, mtime: timeOf(s, timed) }));
    plan = planPitr(entries, { segments, historyNames: histories.map((h) => h.entry.file.name), histories: historiesByTimeline(histories) }, target);
  } catch (err) {
    if (err instanceof TaskError) throw new TaskError(err.exitCode, `${err.message} (planned from ${where}: its base/, wal/ and wal-partial/)`, { cause: err });
    throw err;
  }
  const base = entries.find((e) => e.name === plan.base) as RemoteBaseEntry;
  const sizes = new Map(wal.map((o) => [o.name, o.size]));
  const walBytes = plan.segments.reduce((n, s) => n + (sizes.get(s.source) ?? 0), 0);
  let fetchedBase = 0;
  const archive = wal.reduce((n, o) => n + o.size, 0) + bases.reduce((n, b) => n + (b.bytes ?? 0), 0);
  log.info({ backup: plan.base, segments: plan.segments.length, timeHeads: heads, walBytes, baseBytes: base.bytes, archiveBytes: archive }, `planned from ${where}`);
  return {
    where,
    plan,
    histories,
    signatures: bucketWal.statements,
    wal: bucketWal.source(),
    fetched: () => ({ bytes: bucketWal.bytesFetched + fetchedBase, of: archive }),
    notes: [
      `source:       ${where}`,
      `would fetch:  ${plan.base} (${humanBytes(base.bytes ?? 0)}) and ${plan.segments.length} WAL file(s) (${humanBytes(walBytes)}) of ${humanBytes(archive)} in the bucket`,
    ],
    base: async (beforeFetch) => {
      const trusted = base.trusted;
      if (trusted === null) throw new TaskError(ExitCode.refused, `${base.name} in ${where}: ${base.problem ?? "not verified"}`);
      beforeFetch(trusted);
      const d = await downloadBase(t, trusted, tmp, log);
      fetchedBase = d.bytes;
      log.info({ backup: base.name, bytes: d.bytes, walBytesFetched: bucketWal.bytesFetched, archiveBytes: archive }, `downloaded ${base.name} from ${where}`);
      return { trusted: { ...trusted, path: d.path }, release: d.remove };
    },
  };
}
