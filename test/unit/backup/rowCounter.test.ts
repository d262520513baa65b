import { describe, expect, it } from "vitest";
import { RowCounter } from "../../../lib/backup/rowCounter.js";

const DUMP = [
  "SET x = 1;",
  "",
  "COPY public.t (id, v) FROM stdin;",
  "1\ta",
  "2\tCOPY public.fake (x) FROM stdin;",
  "3\t\\\\.",
  "\\.",
  "",
  'COPY "Weird"."Tab le" (x) FROM stdin;',
  "\\.",
  "",
  "COPY public.empty  FROM stdin;",
  "",
  "\\.",
  "",
].join("\n");

describe("RowCounter", () => {
  it.each([1, 2, 3, 7, 64, 4096])("counts rows per COPY block at chunk size %i", (size) => {
    const c = new RowCounter();
    const buf = Buffer.from(DUMP);
    for (let i = 0; i < buf.length; i += size) c.push(buf.subarray(i, i + size));
    expect(c.toObject()).toEqual({ "public.t": 3, '"Weird"."Tab le"': 0, "public.empty": 1 });
    expect(c.inCopy).toBe(false);
  });

  it("knows when a stream ends inside a COPY block", () => {
    const c = new RowCounter();
    c.push(Buffer.from("COPY public.t (id) FROM stdin;\n1\n2\n"));
    expect(c.inCopy).toBe(true);
  });

  it("handles a line longer than its prefix buffer", () => {
    const c = new RowCounter();
    c.push(Buffer.from("COPY public.big (v) FROM stdin;\n"));
    for (let i = 0; i < 10; i++) c.push(Buffer.alloc(1000, 0x61));
    c.push(Buffer.from("\n\\.\n"));
    expect(c.toObject()).toEqual({ "public.big": 1 });
  });
});
