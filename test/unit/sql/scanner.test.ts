import { describe, expect, it } from "vitest";
import { newScanState, scanLine, splitStatements } from "../../../lib/sql/scanner.js";

describe("splitStatements", () => {
  it.each([
    ["SELECT $$a;b$$; SELECT 2;", ["SELECT $$a;b$$;", "SELECT 2;"]],
    ["SELECT $x$ $$; $x$;\nSELECT 'it''s;';", ["SELECT $x$ $$; $x$;", "SELECT 'it''s;';"]],
    ["SELECT E'\\';'; SELECT 3;", ["SELECT E'\\';';", "SELECT 3;"]],
    ["-- a; comment\nSELECT /* x; /* y; */ z; */ 1;", ["SELECT /* x; /* y; */ z; */ 1;"]],
    ['SELECT "a;""b"; SELECT $1;', ['SELECT "a;""b";', "SELECT $1;"]],
    ["COPY t (a) FROM stdin;\nSELECT 1;\n\\.\nSELECT 2;\n", ["COPY t (a) FROM stdin;", "SELECT 2;"]],
    ["\\connect x\nSELECT a$b$c; SELECT 4;", ["SELECT a$b$c;", "SELECT 4;"]],
  ])("%j", (sql, statements) => {
    const buf = Buffer.from(sql);
    expect(splitStatements(buf).map((s) => buf.toString("utf8", s.start, s.end))).toEqual(statements);
  });
});

describe("scanLine", () => {
  it("reports statement starts and meta-commands only outside quotes, comments and COPY data", () => {
    const lines = [
      "SET x = 1; SELECT '",
      "\\connect inside a string';",
      "  \\connect real",
      "/* \\connect in a comment */ CREATE TABLE t (a int);",
      "COPY t (a) FROM stdin;",
      "\\connect data",
      "\\.",
      "GRANT ALL ON DATABASE d TO r;",
    ];
    const st = newScanState();
    const events: string[] = [];
    lines.forEach((text, n) => {
      const line = Buffer.from(text + "\n");
      scanLine(line, st, {
        start: (p) => events.push(`${n}:start:${line.toString("utf8", p, p + 6)}`),
        meta: (p) => events.push(`${n}:meta:${line.toString("utf8", p, p + 8)}`),
      });
    });
    expect(events).toEqual(["0:start:SET x ", "0:start:SELECT", "2:meta:\\connect", "3:start:CREATE", "4:start:COPY t", "7:start:GRANT "]);
  });
});
