import { describe, expect, it } from "vitest";
import { describePsqlStderr } from "../../lib/psql.js";

describe("describePsqlStderr", () => {
  it("takes psql's error line, its input line and the context lines", () => {
    const stderr = [
      "psql:<stdin>:12: NOTICE:  something harmless",
      'psql:<stdin>:105: ERROR:  type "nosuchtype" does not exist',
      "LINE 2:     b nosuchtype,",
      "              ^",
      "CONTEXT:  whatever",
      "",
    ].join("\n");
    expect(describePsqlStderr(stderr)).toEqual({
      line: 105,
      text: 'ERROR: type "nosuchtype" does not exist | LINE 2:     b nosuchtype, | ^ | CONTEXT:  whatever',
    });
  });

  it("falls back to the tail when psql printed no error line", () => {
    expect(describePsqlStderr("psql: error: connection to server failed\n")).toEqual({ line: null, text: "psql: error: connection to server failed" });
  });
});
