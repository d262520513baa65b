import { describe, expect, it } from "vitest";
import type { Tier } from "../../../lib/store/naming.js";
import { backupName } from "../../../lib/store/naming.js";
import type { RetentionDecision, RetentionInput, RetentionPolicy } from "../../../lib/retention/plan.js";
import { planRetention } from "../../../lib/retention/plan.js";

const SEC = 1000;
const HOUR = 60 * 60 * SEC;
const DAY = 24 * HOUR;
const NOW = new Date("2026-11-20T03:30:00Z");
const DEFAULTS: RetentionPolicy = { keepAllDays: 14, keepDifferentialDays: 42, minFull: 2 };

function make(tier: Tier, ageMs: number, parent: RetentionInput | string | null = null, valid = true): RetentionInput {
  const time = new Date(NOW.getTime() - ageMs);
  const parentName = typeof parent === "string" || parent === null ? parent : parent.name;
  return { name: backupName(tier, time, "bzip2"), tier, time, parent: parentName, valid };
}

function decide(backups: RetentionInput[], policy: Partial<RetentionPolicy> = {}, now = NOW): Map<string, RetentionDecision> {
  const decisions = planRetention(backups, { ...DEFAULTS, ...policy }, now);
  return new Map(decisions.map((d) => [d.name, d]));
}

function decisionOf(map: Map<string, RetentionDecision>, b: RetentionInput): Pick<RetentionDecision, "action" | "reason"> {
  const d = map.get(b.name);
  if (d === undefined) throw new Error(`no decision for ${b.name}`);
  return { action: d.action, reason: d.reason };
}

describe("planRetention: age boundaries (age <= N days is within N days)", () => {
  // Two young fulls keep the minimum satisfied; an old anchor full is every subject's parent.
  const young = [make("full", 1 * DAY), make("full", 2 * DAY)];
  const anchor = make("full", 200 * DAY);

  it.each<[string, Tier, number, Partial<RetentionPolicy>, "keep" | "delete", string]>([
    ["incremental at exactly 14 days", "incremental", 14 * DAY, {}, "keep", "within 14 days"],
    ["incremental at 14 days + 1 s", "incremental", 14 * DAY + SEC, {}, "delete", "incremental older than 14 days"],
    ["incremental at 30 days", "incremental", 30 * DAY, {}, "delete", "incremental older than 14 days"],
    ["differential at 14 days + 1 s", "differential", 14 * DAY + SEC, {}, "keep", "differential within 42 days"],
    ["differential at exactly 42 days", "differential", 42 * DAY, {}, "keep", "differential within 42 days"],
    ["differential at 42 days + 1 s", "differential", 42 * DAY + SEC, {}, "delete", "differential older than 42 days"],
    ["full at 20 days", "full", 20 * DAY, {}, "keep", "full within 42 days"],
    ["full at 42 days + 1 s, fulls kept forever", "full", 42 * DAY + SEC, {}, "keep", "full: fulls are kept indefinitely"],
    ["full at 150 days, fulls kept forever", "full", 150 * DAY, {}, "keep", "full: fulls are kept indefinitely"],
    ["full at exactly 60 days, keepFullDays 60", "full", 60 * DAY, { keepFullDays: 60 }, "keep", "full within 60 days"],
    ["full at 60 days + 1 s, keepFullDays 60", "full", 60 * DAY + SEC, { keepFullDays: 60 }, "delete", "full older than 60 days"],
    ["full at 30 days, keepFullDays 20 (never shortens the 42-day window)", "full", 30 * DAY, { keepFullDays: 20 }, "keep", "full within 42 days"],
    ["incremental 5 minutes in the future", "incremental", -5 * 60 * SEC, {}, "keep", "time is in the future (clock skew?); kept until it is not"],
  ])("%s", (_label, tier, ageMs, policy, action, reason) => {
    const subject = make(tier, ageMs, tier === "full" ? null : anchor);
    const map = decide([anchor, ...young, subject], policy);
    expect(decisionOf(map, subject)).toEqual({ action, reason });
  });

  it("uses keepFullDays = Infinity when the policy omits it", () => {
    const old = make("full", 3000 * DAY);
    expect(decisionOf(decide([old, ...young]), old).action).toBe("keep");
  });
});

describe("planRetention: DST changes shift nothing (ages are elapsed UTC time)", () => {
  // Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST, 2026-10-25 03:00 CEST -> 02:00 CET.
  it.each<[string, string, string, "keep" | "delete"]>([
    ["spring: 14 calendar days at 03:00 local is only 13 d 23 h", "2026-03-20T03:00:00+01:00", "2026-04-03T03:00:00+02:00", "keep"],
    ["spring: exactly 14 d elapsed (04:00 local)", "2026-03-20T03:00:00+01:00", "2026-04-03T04:00:00+02:00", "keep"],
    ["spring: 14 d + 1 s elapsed", "2026-03-20T03:00:00+01:00", "2026-04-03T04:00:01+02:00", "delete"],
    ["autumn: 14 calendar days at 03:00 local is 14 d 1 h", "2026-10-20T03:00:00+02:00", "2026-11-03T03:00:00+01:00", "delete"],
    ["autumn: exactly 14 d elapsed (02:00 local)", "2026-10-20T03:00:00+02:00", "2026-11-03T02:00:00+01:00", "keep"],
  ])("%s", (_label, taken, now, action) => {
    const time = new Date(taken);
    const full = { name: "20260101_020000_full.sql.bz2", tier: "full" as const, time: new Date("2026-01-01T02:00:00Z"), parent: null, valid: true };
    const incr = { name: backupName("incremental", time, "bzip2"), tier: "incremental" as const, time, parent: full.name, valid: true };
    const [, decision] = planRetention([full, incr], DEFAULTS, new Date(now));
    expect(decision?.action).toBe(action);
  });
});

describe("planRetention: invalid backups", () => {
  const young = [make("full", 1 * DAY), make("full", 2 * DAY)];

  it.each<[string, Tier, number, string | undefined, "keep" | "delete", string]>([
    ["young invalid incremental", "incremental", 3 * DAY, "sha256 mismatch", "keep", "invalid: sha256 mismatch; kept for inspection: within 14 days"],
    ["old invalid differential", "differential", 20 * DAY, undefined, "delete", "invalid (bad checksum or manifest); older than 14 days"],
    ["old invalid full", "full", 20 * DAY, "no manifest x.json", "delete", "invalid: no manifest x.json; older than 14 days"],
    ["future invalid full", "full", -HOUR, undefined, "keep", "time is in the future (clock skew?); kept until it is not"],
  ])("%s", (_label, tier, ageMs, problem, action, reason) => {
    const subject = { ...make(tier, ageMs, null, false), problem };
    expect(decisionOf(decide([...young, subject]), subject)).toEqual({ action, reason });
  });

  it("keeps an old invalid parent that a kept backup needs, and says so", () => {
    const full = make("full", 30 * DAY);
    const brokenDiff = make("differential", 16 * DAY, full, false);
    const incr = make("incremental", 13 * DAY, brokenDiff);
    const map = decide([full, brokenDiff, incr, ...young]);
    expect(decisionOf(map, brokenDiff)).toEqual({
      action: "keep",
      reason: `needed by ${incr.name}, although invalid (bad checksum or manifest)`,
    });
  });

  it("keeps the chain of a young invalid backup", () => {
    const full = make("full", 20 * DAY);
    const oldIncr = make("incremental", 15 * DAY, full);
    const badIncr = make("incremental", 3 * DAY, oldIncr, false);
    const map = decide([full, oldIncr, badIncr, ...young]);
    expect(decisionOf(map, oldIncr)).toEqual({ action: "keep", reason: `needed by ${badIncr.name}` });
  });
});

describe("planRetention: the newest minFull valid fulls", () => {
  it("keeps the newest 2 of 3 old fulls past keepFullDays", () => {
    const [f100, f107, f114] = [make("full", 100 * DAY), make("full", 107 * DAY), make("full", 114 * DAY)];
    const map = decide([f114, f100, f107], { keepFullDays: 60 });
    expect([f100, f107, f114].map((f) => decisionOf(map, f))).toEqual([
      { action: "keep", reason: "one of the newest 2 valid fulls" },
      { action: "keep", reason: "one of the newest 2 valid fulls" },
      { action: "delete", reason: "full older than 60 days" },
    ]);
  });

  it("skips an invalid newest full and keeps the two newest valid ones", () => {
    const bad = make("full", 100 * DAY, null, false);
    const [f107, f114, f121] = [make("full", 107 * DAY), make("full", 114 * DAY), make("full", 121 * DAY)];
    const map = decide([bad, f107, f114, f121], { keepFullDays: 60 });
    expect([bad, f107, f114, f121].map((f) => decisionOf(map, f))).toEqual([
      { action: "delete", reason: "invalid (bad checksum or manifest); older than 14 days" },
      { action: "keep", reason: "one of the newest 2 valid fulls" },
      { action: "keep", reason: "one of the newest 2 valid fulls" },
      { action: "delete", reason: "full older than 60 days" },
    ]);
  });

  it("does not let a young invalid full or a future-dated full count toward the minimum", () => {
    const badYoung = make("full", 3 * DAY, null, false);
    const future = make("full", -2 * HOUR);
    const [f100, f107, f114] = [make("full", 100 * DAY), make("full", 107 * DAY), make("full", 114 * DAY)];
    const map = decide([badYoung, future, f100, f107, f114], { keepFullDays: 60 });
    expect([badYoung, future, f100, f107, f114].map((f) => decisionOf(map, f).action)).toEqual([
      "keep", "keep", "keep", "keep", "delete",
    ]);
  });

  it("keeps nothing extra when minFull is 0", () => {
    const old = make("full", 100 * DAY);
    expect(decisionOf(decide([old], { keepFullDays: 60, minFull: 0 }), old).action).toBe("delete");
  });
});

describe("planRetention: dependency chains", () => {
  const young = [make("full", 1 * DAY), make("full", 2 * DAY)];

  it("keeps incremental 13 d -> differential 16 d -> full 20 d, each by its own rule", () => {
    const full = make("full", 20 * DAY);
    const diff = make("differential", 16 * DAY, full);
    const incr = make("incremental", 13 * DAY, diff);
    const map = decide([full, diff, incr]);
    expect([incr, diff, full].map((b) => decisionOf(map, b))).toEqual([
      { action: "keep", reason: "within 14 days" },
      { action: "keep", reason: "differential within 42 days" },
      { action: "keep", reason: "full within 42 days" },
    ]);
  });

  it("keeps the chain by dependency when age alone would delete it", () => {
    const full = make("full", 20 * DAY);
    const diff = make("differential", 16 * DAY, full);
    const incr = make("incremental", 13 * DAY, diff);
    const map = decide([full, diff, incr], { keepDifferentialDays: 14, keepFullDays: 14, minFull: 0 });
    expect([diff, full].map((b) => decisionOf(map, b))).toEqual([
      { action: "keep", reason: `needed by ${incr.name}` },
      { action: "keep", reason: `needed by ${incr.name}` },
    ]);
  });

  it.each<[string, number, "keep" | "delete"]>([
    ["i3 kept (13 d) keeps i1 and i2", 13 * DAY, "keep"],
    ["i3 deleted (15 d) lets i1 and i2 go", 15 * DAY, "delete"],
  ])("incremental chain i1 <- i2 <- i3: %s", (_label, i3Age, action) => {
    const full = make("full", 30 * DAY);
    const i1 = make("incremental", i3Age + 2 * DAY, full);
    const i2 = make("incremental", i3Age + DAY, i1);
    const i3 = make("incremental", i3Age, i2);
    const map = decide([i3, i2, i1, full, ...young]);
    expect([i1, i2, i3].map((b) => decisionOf(map, b).action)).toEqual([action, action, action]);
    if (action === "keep") expect(decisionOf(map, i1).reason).toBe(`needed by ${i3.name}`);
  });

  it("names the newest backup that needs an ancestor", () => {
    const full = make("full", 30 * DAY);
    const i1 = make("incremental", 15 * DAY, full);
    const i2 = make("incremental", 13 * DAY, i1);
    const i3 = make("incremental", 12 * DAY, i2);
    expect(decisionOf(decide([full, i1, i2, i3, ...young]), i1).reason).toBe(`needed by ${i3.name}`);
  });

  it("terminates on a parent cycle from corrupt manifests", () => {
    const a = { ...make("incremental", 3 * DAY), parent: "20261101_000000_incremental.sql.bz2" };
    const b = { ...make("incremental", 19 * DAY), name: "20261101_000000_incremental.sql.bz2", parent: a.name };
    const map = decide([a, b, ...young]);
    expect(decisionOf(map, b)).toEqual({ action: "keep", reason: `needed by ${a.name}` });
  });
});

describe("planRetention: orphans (parent missing from the input)", () => {
  const missing = "20260101_020000_full.sql.bz2";
  const young = [make("full", 1 * DAY), make("full", 2 * DAY)];

  it.each<[string, Tier, number, "keep" | "delete", string]>([
    ["young orphan incremental is kept", "incremental", 3 * DAY, "keep", `within 14 days; orphan: parent ${missing} missing`],
    ["old orphan incremental is deleted", "incremental", 20 * DAY, "delete", `incremental older than 14 days; orphan: parent ${missing} missing`],
    ["orphan differential within 42 days is kept", "differential", 20 * DAY, "keep", `differential within 42 days; orphan: parent ${missing} missing`],
  ])("%s", (_label, tier, ageMs, action, reason) => {
    const orphan = make(tier, ageMs, missing);
    expect(decisionOf(decide([orphan, ...young]), orphan)).toEqual({ action, reason });
  });
});

describe("planRetention: output and purity", () => {
  it("returns one decision per input, sorted by time then name, and leaves the input alone", () => {
    const full = make("full", 20 * DAY);
    const sameTime = { ...make("incremental", 20 * DAY, full), name: backupName("incremental", full.time, "bzip2") };
    const incr = make("incremental", 3 * DAY, full);
    const input = [incr, sameTime, full];
    const before = structuredClone(input);
    const first = planRetention(input, DEFAULTS, NOW);
    expect(input).toEqual(before);
    expect(first.map((d) => d.name)).toEqual([full.name, sameTime.name, incr.name]);
    expect(first.every((d) => d.reason.length > 0)).toBe(true);
    expect(planRetention([...input].reverse(), DEFAULTS, NOW)).toEqual(first);
    first[0]?.time.setTime(0);
    expect(full.time).toEqual(before[2]?.time);
  });

  it("plans nothing for no backups", () => {
    expect(planRetention([], DEFAULTS, NOW)).toEqual([]);
  });

  it.each<[string, RetentionPolicy, Date]>([
    ["NaN keepAllDays", { ...DEFAULTS, keepAllDays: Number.NaN }, NOW],
    ["negative keepDifferentialDays", { ...DEFAULTS, keepDifferentialDays: -1 }, NOW],
    ["NaN keepFullDays", { ...DEFAULTS, keepFullDays: Number.NaN }, NOW],
    ["fractional minFull", { ...DEFAULTS, minFull: 1.5 }, NOW],
    ["invalid now", DEFAULTS, new Date(Number.NaN)],
  ])("refuses to plan with %s", (_label, policy, now) => {
    expect(() => planRetention([make("full", DAY)], policy, now)).toThrow(RangeError);
  });
});

// A year of the default schedule against the planner, with a seeded PRNG so a failure
// reproduces. Europe/Berlin is approximated by the EU rule: UTC+2 from the last Sunday
// of March 01:00 UTC to the last Sunday of October 01:00 UTC, else UTC+1.
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function lastSunday0100Utc(year: number, month: number): number {
  const d = new Date(Date.UTC(year, month + 1, 0, 1));
  return d.getTime() - d.getUTCDay() * DAY;
}

/** Wall-clock fields of an instant in Berlin, read through the UTC getters. */
function berlinWall(utcMs: number): Date {
  const year = new Date(utcMs).getUTCFullYear();
  const summer = utcMs >= lastSunday0100Utc(year, 2) && utcMs < lastSunday0100Utc(year, 9);
  return new Date(utcMs + (summer ? 2 : 1) * HOUR);
}

interface Year {
  /** Every backup file ever written, oldest first. */
  made: RetentionInput[];
  /** Invariant violations, "<cleanup time>: <what>"; empty when the planner is right. */
  problems: string[];
  maxCount: Record<Tier, number>;
}

function simulateYear(seed: number, policy: RetentionPolicy): Year {
  const rng = mulberry32(seed);
  const start = new Date("2026-01-04T03:00:00+01:00").getTime(); // Sunday, the first full
  const store = new Map<string, RetentionInput>();
  const year: Year = { made: [], problems: [], maxCount: { full: 0, differential: 0, incremental: 0 } };
  // The newest valid backups are days younger than anything retention deletes, so plain
  // variables track the parents a real backup task would find in the catalog.
  let lastFull: RetentionInput | undefined;
  let lastValid: RetentionInput | undefined;
  for (let t = start; t < start + 365 * DAY; t += HOUR) {
    const wall = berlinWall(t);
    const at3 = wall.getUTCHours() === 3;
    let tier: Tier = at3 && wall.getUTCDay() === 0 ? "full" : at3 && wall.getUTCDay() === 3 ? "differential" : "incremental";
    if (lastFull === undefined) tier = "full"; // the seed rule: no valid full, take one
    const r = rng();
    const written = !(tier === "incremental" && r < 0.3) && !(r >= 0.3 && r < 0.32); // no changes / failed
    if (written) {
      const valid = !(r >= 0.32 && r < 0.33);
      const parent = tier === "full" ? undefined : tier === "differential" ? lastFull : lastValid;
      // An invalid backup may have lost its manifest, and with it the parent link.
      const linked = valid || rng() < 0.5;
      const time = new Date(t);
      const b: RetentionInput = { name: backupName(tier, time, "bzip2"), tier, time, parent: linked ? (parent?.name ?? null) : null, valid };
      store.set(b.name, b);
      year.made.push(b);
      if (valid) lastValid = b;
      if (valid && tier === "full") lastFull = b;
    }
    if (wall.getUTCHours() !== 4) continue;
    const now = t + 30 * 60 * SEC; // cleanup at 04:30 local
    const decisions = planRetention([...store.values()], policy, new Date(now));
    if (decisions.length !== store.size) year.problems.push(`${new Date(now).toISOString()}: decisions do not match input`);
    for (const d of decisions) if (d.action === "delete") store.delete(d.name);
    year.problems.push(...violations(store, year.made, now, policy).map((p) => `${new Date(now).toISOString()}: ${p}`));
    for (const tier of ["full", "differential", "incremental"] as const) {
      year.maxCount[tier] = Math.max(year.maxCount[tier], [...store.values()].filter((b) => b.tier === tier).length);
    }
  }
  return year;
}

function violations(store: Map<string, RetentionInput>, made: RetentionInput[], now: number, policy: RetentionPolicy): string[] {
  const problems: string[] = [];
  const within = (b: RetentionInput, days: number): boolean => now - b.time.getTime() <= days * DAY;
  const restorable = (b: RetentionInput | undefined): boolean =>
    b !== undefined && b.valid && (b.parent === null ? b.tier === "full" : restorable(store.get(b.parent)));
  const chainPresent = (b: RetentionInput | undefined): boolean =>
    b !== undefined && (b.parent === null || chainPresent(store.get(b.parent)));
  const kept = [...store.values()];
  const count = (tier: Tier, valid?: boolean): number =>
    kept.filter((b) => b.tier === tier && (valid === undefined || b.valid === valid)).length;

  const validFullsMade = made.filter((b) => b.tier === "full" && b.valid).length;
  if (count("full", true) < Math.min(policy.minFull, validFullsMade)) problems.push(`only ${count("full", true)} valid fulls`);
  for (const b of made.filter((m) => within(m, policy.keepAllDays))) {
    if (!chainPresent(store.get(b.name))) problems.push(`${b.name} (within keep-all) or its chain is gone`);
    else if (b.valid && !restorable(b)) problems.push(`${b.name} (within keep-all) is not restorable`);
  }
  // Between 14 and 42 days the restorable points are that period's fulls and differentials.
  for (const b of made.filter((m) => m.valid && m.tier !== "incremental" && within(m, policy.keepDifferentialDays))) {
    if (!restorable(store.get(b.name))) problems.push(`${b.name} (within 42 days) is not restorable`);
  }
  // Beyond 42 days, a restorable point for every week that had one: its valid full.
  for (const b of made.filter((m) => m.valid && m.tier === "full" && within(m, policy.keepFullDays ?? Infinity))) {
    if (!store.has(b.name)) problems.push(`${b.name} (full within keepFullDays) is gone`);
  }
  for (const b of kept) if (b.parent !== null && !store.has(b.parent)) problems.push(`${b.name} is an orphan`);

  // Bounded: the incrementals the rules need are those after the newest valid full or
  // differential taken before the keep-all window (the oldest young incremental's root).
  const keepAllStart = now - policy.keepAllDays * DAY;
  const root = made.filter((m) => m.valid && m.tier !== "incremental" && m.time.getTime() <= keepAllStart).at(-1);
  const needed = made.filter((m) => m.tier === "incremental" && m.time > (root?.time ?? new Date(0))).length;
  if (count("incremental") > needed) problems.push(`${count("incremental")} incrementals kept, at most ${needed} needed`);
  const differentialBound = Math.floor(policy.keepDifferentialDays / 7) + 1;
  if (count("differential") > differentialBound) problems.push(`${count("differential")} differentials kept`);
  const fullDays = policy.keepFullDays ?? Infinity;
  const fullBound = fullDays === Infinity ? made.filter((m) => m.tier === "full").length : Math.floor(fullDays / 7) + 1 + policy.minFull;
  if (count("full") > fullBound) problems.push(`${count("full")} fulls kept, bound ${fullBound}`);
  return problems;
}

describe("planRetention: a simulated year of the default schedule", () => {
  it("approximates Berlin time like the tz database does", () => {
    const fmt = new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/Berlin", hourCycle: "h23", weekday: "short", hour: "2-digit" });
    const start = Date.parse("2026-01-01T00:00:00Z");
    const mismatches: string[] = [];
    for (let t = start; t < start + 365 * DAY; t += HOUR) {
      const parts = Object.fromEntries(fmt.formatToParts(new Date(t)).map((p) => [p.type, p.value]));
      const wall = berlinWall(t);
      const ours = `${["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][wall.getUTCDay()]} ${String(wall.getUTCHours()).padStart(2, "0")}`;
      if (ours !== `${parts.weekday} ${parts.hour}`) mismatches.push(`${new Date(t).toISOString()}: ${ours}`);
    }
    expect(mismatches).toEqual([]);
  });

  it.each<[number, number | undefined]>([
    [1, undefined],
    [1, 90],
    [20260104, undefined],
    [20260104, 90],
    [0xdecafbad, undefined],
    [0xdecafbad, 90],
  ])("seed %i, keepFullDays %s: invariants hold after every daily cleanup", (seed, keepFullDays) => {
    const policy: RetentionPolicy = { ...DEFAULTS, ...(keepFullDays === undefined ? {} : { keepFullDays }) };
    const { made, problems, maxCount } = simulateYear(seed, policy);
    expect(problems).toEqual([]);
    // The year really exercised the failure modes the invariants are about.
    expect(made.filter((b) => !b.valid && b.tier === "incremental").length).toBeGreaterThan(20);
    expect(made.length).toBeGreaterThan(0.65 * 365 * 24);
    // Steady state: two weeks of hourly incrementals (about 70% written) plus one chain to its root.
    expect(maxCount.incremental).toBeLessThan((policy.keepAllDays + 7) * 24);
    expect(maxCount.differential).toBeLessThanOrEqual(7);
    expect(maxCount.full).toBeLessThanOrEqual(keepFullDays === undefined ? 53 : Math.floor(keepFullDays / 7) + 1 + policy.minFull);
  });
});
