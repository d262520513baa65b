// The WAL archive in the bucket as restore-pitr --source s3 reads it: each file the plan needs
// fetched once into memory with a size cap (a segment: what its segment size can take stored;
// a history file: 1 MiB), and from exactly those bytes its signature checked, decrypted and
// decompressed (wal/readFile.ts: decodeWal), as restore-pitr does with wal/. Signatures are
// small and fetched once each: the planning check (checkPlannedWal) and the staging read use the
// same text. Nothing else is fetched: no segment outside the plan, no history file older than
// the base backup's timeline.
import { ExitCode, TaskError } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import { MAX_HISTORY_BYTES } from "../wal/archive.js";
import type { HistoryRead } from "../wal/archive.js";
import { parseWalName, WAL_SIGNATURE_SUFFIX } from "../physical/layout.js";
import type { MirrorTarget } from "../s3/client.js";
import { ObjectTooLarge, getBytes, keyPrefix, s3Failure, s3Url } from "../s3/client.js";
import { decodeWal, storedLimit, walStatementOf } from "../wal/readFile.js";
import type { WalTrust } from "../wal/readFile.js";
import { WAL_SIGNATURE_MAX_BYTES } from "../wal/signature.js";
import type { StatementReader } from "../wal/signedRecord.js";
import { parseTimelineHistory } from "../wal/timelineHistory.js";
import { readSegmentOnce } from "../pitr/walStaging.js";
import type { WalSource } from "../pitr/walStaging.js";
import { walObjectKey } from "../receiver/walUpload.js";
import type { RemoteWalObject } from "../receiver/walUpload.js";

export class BucketWal {
  readonly #t: MirrorTarget;
  readonly #log: Logger;
  /** Signature texts by file name (null: the bucket has none). */
  readonly #signatures = new Map<string, string | null>();
  /** Bytes fetched from the bucket for WAL and signatures: the restore's cost. */
  bytesFetched = 0;
  filesFetched = 0;

  constructor(t: MirrorTarget, log: Logger) {
    this.#t = t;
    this.#log = log;
  }

  get where(): string {
    return s3Url(this.#t.s3, `${keyPrefix(this.#t.s3)}wal`);
  }

  async #get(key: string, max: number, what: string): Promise<Buffer | null> {
    try {
      const bytes = await getBytes(this.#t, key, max);
      if (bytes !== null) [this.bytesFetched, this.filesFetched] = [this.bytesFetched + bytes.length, this.filesFetched + 1];
      return bytes;
    } catch (err) {
      if (err instanceof ObjectTooLarge) throw new TaskError(ExitCode.refused, `${s3Url(this.#t.s3, key)} is larger than a ${what} can be (${err.message}); it is not WAL that wal-receive uploaded: remove it from the bucket`, { cause: err });
      throw await s3Failure(this.#t.s3, this.#t.client, `download of ${s3Url(this.#t.s3, key)}`, err, ExitCode.failed);
    }
  }

  /** The signature text of the file stored as `name`, fetched once; null when the bucket has none. */
  async signature(name: string, fresh = false): Promise<string | null> {
    if (!fresh && this.#signatures.has(name)) return this.#signatures.get(name) ?? null;
    const file = parseWalName(name);
    if (file === null) throw new Error(`${name} is not a WAL file name`);
    const text = (await this.#get(walObjectKey(this.#t, file) + WAL_SIGNATURE_SUFFIX, WAL_SIGNATURE_MAX_BYTES, "signature"))?.toString("utf8") ?? null;
    this.#signatures.set(name, text);
    return text;
  }

  /** For checkPlannedWal: the signatures in the bucket. */
  readonly statements: StatementReader = async (name, key, systemIdentifier) => walStatementOf(name, await this.signature(name), key, systemIdentifier, "is missing in the S3 mirror: the file is unsigned");

  /** For stageWal: each planned segment fetched once and decoded from those bytes; a snapshot that fails its signature is fetched once more (it may have been replaced between its two objects). */
  source(): WalSource {
    return {
      where: this.where,
      read: (s, trust, segmentSize) => {
        const file = parseWalName(s.source);
        if (file?.kind !== "segment") throw new Error(`${s.source} in the S3 mirror is not a WAL segment`);
        let attempt = 0;
        return readSegmentOnce(s, trust, async () => {
          const fresh = attempt++ > 0;
          const key = walObjectKey(this.#t, file);
          const bytes = await this.#get(key, storedLimit(segmentSize), "WAL segment");
          if (bytes === null) throw new TaskError(ExitCode.failed, `${s3Url(this.#t.s3, key)} is gone from the bucket since restore-pitr listed it (deleted by cleanup or mirror?); run restore-pitr again`);
          return decodeWal(file, bytes, trust, async (k) => walStatementOf(s.source, await this.signature(s.source, fresh), k, trust.systemIdentifier, "is missing in the S3 mirror: the file is unsigned"), {
            maxBytes: segmentSize,
            systemIdentifier: trust.systemIdentifier,
            partial: file.partial,
          });
        });
      },
    };
  }

  /** The history files, each fetched once, checked (with a verify key its verdict kept, as readHistoryFiles does) and parsed. */
  async histories(objects: readonly RemoteWalObject[], trust: WalTrust): Promise<HistoryRead[]> {
    const out: HistoryRead[] = [];
    for (const o of objects) {
      const file = parseWalName(o.name);
      if (file?.kind !== "history") continue;
      const bytes = await this.#get(o.key, storedLimit(MAX_HISTORY_BYTES), "timeline history file");
      if (bytes === null) continue;
      const read = await decodeWal(file, bytes, trust, async (k) => walStatementOf(o.name, await this.signature(o.name), k, null, "is missing in the S3 mirror: the file is unsigned"), {
        maxBytes: MAX_HISTORY_BYTES,
        systemIdentifier: null,
        partial: false,
        reportUntrusted: true,
      });
      try {
        const history = parseTimelineHistory(read.data.toString("utf8"));
        out.push({ entry: { file, path: s3Url(this.#t.s3, o.key), size: o.size, mtime: o.lastModified }, text: read.data, history, statement: read.statement, untrusted: read.untrusted });
      } catch (err) {
        throw new TaskError(ExitCode.refused, `timeline history file ${s3Url(this.#t.s3, o.key)} is malformed (${(err as Error).message}); replace it with ${o.name} from the server's pg_wal/ or wal/`, { cause: err });
      }
    }
    this.#log.debug({ histories: out.map((h) => h.entry.file.name) }, "timeline history files read from the S3 mirror");
    return out;
  }
}
