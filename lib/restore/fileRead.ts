// One file of a restore, read once: its globals to the globals sink (the globals file), each
// wanted section to its own job (lib/restore/database.ts), every section to the observer; a
// read that fails stops the restore when it proves the file is not the recorded one.
import { DatabaseJob } from "./database.js";
import type { JobContext, JobOutcome, JobSpec } from "./database.js";
import { openSqlStream } from "./decompress.js";
import type { SqlStream } from "./decompress.js";
import { ExitCode, TaskError } from "../core/errors.js";
import type { GlobalsGate } from "./globals.js";
import { readSections, printedName } from "../sql/sections.js";
import type { SectionsResult } from "../sql/splitter.js";
import type { RestoreContext, RestoreFile, RestoreOutcome } from "./context.js";
import { readOptions } from "./context.js";
import type { Slots } from "./slots.js";
import type { Stop } from "./stop.js";
import { readFailure } from "./stop.js";

export interface Settled {
  spec: JobSpec;
  job: DatabaseJob | null;
  outcome: JobOutcome;
}

export interface FileJob {
  file: RestoreFile;
  specs: JobSpec[];
  /** The file whose globals are applied. */
  globals: boolean;
}

/** Reads one file once, handing each wanted section to its job; returns every job's outcome (promises: jobs finish after the reader moves on). */
export async function readFile(ctx: RestoreContext, jc: JobContext, x: FileJob, slots: Slots, stop: Stop, gate: GlobalsGate, reads: RestoreOutcome["reads"]): Promise<Promise<Settled>[]> {
  const { file, specs } = x;
  const bySource = new Map(specs.map((s) => [printedName(s.source), s]));
  const outcomes: Promise<Settled>[] = [];
  const settle = (job: DatabaseJob, p: Promise<JobOutcome>) => outcomes.push(p.then((outcome) => ({ spec: job.spec, job, outcome })).finally(() => slots.give()));
  const started = new Set<string>();
  const seen = ctx.observe?.(file) ?? {};
  let current: DatabaseJob | null = null;
  const read = { file: file.name, sections: null as SectionsResult | null, bytesRead: 0 };
  reads.push(read);
  let sql: SqlStream | null = null;
  let failure: string | null = null;
  try {
    if (!x.globals) await gate.ready;
    sql = openSqlStream(file, readOptions(ctx));
    stop.streams.push(sql);
    const sections = await readSections(sql.stream, {
      onGlobals: async (chunk) => {
        await seen.onGlobals?.(chunk);
        if (x.globals) await gate.sink?.push(chunk);
      },
      onDatabaseStart: async (name) => {
        if (x.globals) await gate.finish();
        await seen.onDatabaseStart?.(name);
        const spec = bySource.get(name);
        if (spec === undefined) return;
        started.add(spec.source);
        await slots.take();
        current = new DatabaseJob(jc, spec);
        await current.begin();
      },
      onDatabaseData: async (name, chunk) => {
        await seen.onDatabaseData?.(name, chunk);
        if (bySource.has(name)) await current?.feed(chunk);
      },
      onDatabaseEnd: async (name, complete) => {
        await seen.onDatabaseEnd?.(name, complete);
        if (!bySource.has(name)) return;
        const job = current as DatabaseJob;
        current = null;
        settle(job, job.endInput(complete));
      },
    });
    await sql.done;
    // A read cancelled because another file stopped the restore ends early without an error: it is no complete read.
    if (stop.error !== null) throw stop.error;
    read.sections = sections;
    if (x.globals) await gate.finish();
    const missing = specs.filter((s) => !started.has(s.source));
    if (missing.length > 0) failure = `${file.name} holds no section for ${missing.map((s) => JSON.stringify(s.source)).join(", ")}`;
  } catch (err) {
    sql?.cancel();
    if (err instanceof TaskError) {
      // The globals could not be applied: no database may be restored without its roles (exit 4 when psql refused a meta-command of them).
      stop.stop(err, err.exitCode === ExitCode.refused);
    } else {
      const why = readFailure(file, ctx.identity, (await sql?.cause) ?? err);
      if (why.integrity) stop.stop(new TaskError(ExitCode.refused, `restore refused: ${why.message}`), true);
      failure = why.message;
    }
    if (x.globals) gate.fail(stop.error ?? err);
    failure = stop.error?.message ?? failure;
  } finally {
    read.bytesRead = sql?.bytesRead() ?? 0;
  }
  if (failure !== null) {
    const running = current as DatabaseJob | null;
    if (running !== null) settle(running, running.abort(failure));
    for (const spec of specs.filter((s) => !started.has(s.source))) {
      ctx.log.error({ database: spec.target, backup: file.name }, failure);
      outcomes.push(Promise.resolve({ spec, job: null, outcome: { status: "failed", error: `database ${JSON.stringify(spec.target)}: ${failure} (left unchanged)` } }));
    }
  }
  return outcomes;
}
