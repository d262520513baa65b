// Counts the data rows of each COPY block in a plain-SQL dump stream, chunk by chunk.
// The hot path is one native indexOf per line; only "COPY …" and "\." lines are inspected.

const NL = 0x0a;
const PREFIX_KEEP = 4096;
const COPY_RE = /^COPY (.+?) (?:\(.*\) )?FROM stdin;$/;

export class RowCounter {
  readonly counts = new Map<string, number>();
  #table: string | null = null;
  #rows = 0;
  /** The start of a line that continues into the next chunk (at most PREFIX_KEEP bytes kept). */
  #prefix: Buffer | null = null;
  #prefixLen = 0;

  push(chunk: Buffer): void {
    let pos = 0;
    if (this.#prefix !== null) {
      const nl = chunk.indexOf(NL);
      if (nl === -1) {
        this.#extendPrefix(chunk);
        return;
      }
      const head = chunk.subarray(0, nl);
      const full = this.#prefixLen + head.length;
      const keep = Buffer.concat([this.#prefix, head.subarray(0, Math.max(0, PREFIX_KEEP - this.#prefix.length))]);
      this.#prefix = null;
      this.#line(keep, full);
      pos = nl + 1;
    }
    for (;;) {
      const nl = chunk.indexOf(NL, pos);
      if (nl === -1) break;
      if (this.#table !== null) {
        if (nl - pos === 2 && chunk[pos] === 0x5c && chunk[pos + 1] === 0x2e) this.#endCopy();
        else this.#rows++;
      } else if (chunk[pos] === 0x43 /* C */) {
        this.#line(chunk.subarray(pos, nl), nl - pos);
      }
      pos = nl + 1;
    }
    if (pos < chunk.length) {
      this.#prefix = Buffer.from(chunk.subarray(pos, pos + PREFIX_KEEP));
      this.#prefixLen = chunk.length - pos;
    }
  }

  #extendPrefix(chunk: Buffer): void {
    const prefix = this.#prefix as Buffer;
    if (prefix.length < PREFIX_KEEP) this.#prefix = Buffer.concat([prefix, chunk.subarray(0, PREFIX_KEEP - prefix.length)]);
    this.#prefixLen += chunk.length;
  }

  #line(start: Buffer, length: number): void {
    if (this.#table !== null) {
      if (length === 2 && start[0] === 0x5c && start[1] === 0x2e) this.#endCopy();
      else this.#rows++;
      return;
    }
    if (length > PREFIX_KEEP || start[0] !== 0x43) return;
    const m = COPY_RE.exec(start.toString("utf8"));
    if (m?.[1] !== undefined) {
      this.#table = m[1].trimEnd();
      this.#rows = 0;
    }
  }

  #endCopy(): void {
    const table = this.#table as string;
    this.counts.set(table, (this.counts.get(table) ?? 0) + this.#rows);
    this.#table = null;
  }

  /** True when the stream ended inside a COPY block (a truncated dump). */
  get inCopy(): boolean {
    return this.#table !== null;
  }

  toObject(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }
}
