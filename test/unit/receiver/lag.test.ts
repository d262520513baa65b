import { describe, expect, it } from "vitest";
import { lagSeconds, pruneSamples } from "../../../lib/receiver/lag.js";
import type { ServerSample } from "../../../lib/receiver/lag.js";

const s = (atSeconds: number, lsn: number): ServerSample => ({ at: atSeconds * 1000, lsn: BigInt(lsn) });

describe("lagSeconds", () => {
  const samples = [s(0, 100), s(5, 100), s(10, 200), s(15, 300), s(20, 300)];
  it.each<[string, readonly ServerSample[], bigint | null, number, number]>([
    ["no samples yet", [], null, 20, 0],
    ["caught up", samples, 300n, 20, 0],
    ["ahead of the last sample (polled in between)", samples, 350n, 20, 0],
    ["has what the server had at 5 s", samples, 150n, 20, 15],
    ["has exactly what the server had at 10 s", samples, 200n, 20, 10],
    ["behind every kept sample: at least since the oldest", samples, 50n, 20, 20],
    ["receiver never reported", samples, null, 20, 20],
    ["server idle, receiver caught up long ago", [s(0, 100), s(1000, 100)], 100n, 1000, 0],
  ])("%s", (_label, ss, received, now, lag) => {
    expect(lagSeconds(ss, received, now * 1000)).toBe(lag);
  });
});

describe("pruneSamples", () => {
  it("keeps the newest sample at or below the received position and everything after", () => {
    expect(pruneSamples([s(0, 100), s(5, 100), s(10, 200), s(15, 300)], 150n)).toEqual([s(5, 100), s(10, 200), s(15, 300)]);
  });
  it("keeps only the newest when caught up", () => {
    expect(pruneSamples([s(0, 100), s(5, 200)], 200n)).toEqual([s(5, 200)]);
  });
  it("keeps all when the receiver is behind all of them", () => {
    expect(pruneSamples([s(0, 100), s(5, 200)], 50n)).toHaveLength(2);
  });
});
