import { describe, expect, it } from "vitest";
import type { CatalogEntry } from "../../../lib/store/catalog.js";
import { parseBackupName } from "../../../lib/store/naming.js";
import { RestorePlanError, formatPlan, planRestore } from "../../../lib/restore/plan.js";
import { testManifest } from "../../manifests.js";
import { ExitCode } from "../../../lib/core/errors.js";
import type { TaskError } from "../../../lib/core/errors.js";

const F = "20240107_030000_full.sql.bz2";
const I1 = "20240107_040000_incremental.sql.bz2";
const I2 = "20240107_050000_incremental.sql.bz2";
const D = "20240110_030000_differential.sql.bz2";
const I3 = "20240110_040000_incremental.sql.bz2";
const I4 = "20240110_050000_incremental.sql.bz2";
const F0 = "20231231_030000_full.sql.bz2";
const D0 = "20240103_030000_differential.sql.bz2";
const BASE = ["template1", "postgres"];

interface Spec {
  parent?: string | null;
  databases: string[];
  included?: string[];
  problem?: string;
  noManifest?: boolean;
  /** A trusted scan found its sidecars do not verify. */
  untrusted?: boolean;
}

function entry(name: string, spec: Spec): CatalogEntry {
  const parsed = parseBackupName(name);
  if (parsed === null) throw new Error(`bad test backup name ${name}`);
  const manifest = testManifest(name, { parent: spec.parent ?? null, databases: spec.databases, included: spec.included ?? spec.databases });
  const usable = spec.noManifest !== true;
  return {
    name,
    tier: parsed.tier,
    path: `/backups/${parsed.tier}/${name}`,
    time: parsed.time,
    parent: usable ? manifest.parent : null,
    manifest: usable ? manifest : null,
    problem: spec.problem ?? (spec.untrusted === true ? "signature missing" : usable ? null : `no manifest ${name}.json`),
    bytes: 1,
    ...(spec.untrusted === true ? { untrusted: true, manifest: null, parent: null } : {}),
  };
}

// A week: full on Sunday, two hourly incrementals ("old" dropped before I2), a Wednesday
// differential, then incrementals ("new" created before I3).
const WEEK: Record<string, Spec> = {
  [F]: { databases: [...BASE, "app", "old", "shop"] },
  [I1]: { parent: F, databases: [...BASE, "app", "old", "shop"], included: ["app"] },
  [I2]: { parent: I1, databases: [...BASE, "app", "shop"], included: ["shop"] },
  [D]: { parent: F, databases: [...BASE, "app", "shop"], included: ["app", "shop"] },
  [I3]: { parent: D, databases: [...BASE, "app", "new", "shop"], included: ["app", "new"] },
  [I4]: { parent: I3, databases: [...BASE, "app", "new", "shop"], included: ["shop"] },
};

function catalog(specs: Record<string, Spec>, changes: Record<string, Partial<Spec> | null> = {}): CatalogEntry[] {
  return Object.entries({ ...specs, ...changes })
    .filter((pair): pair is [string, Spec] => pair[1] !== null)
    .map(([name, spec]) => entry(name, { ...specs[name], ...spec } as Spec));
}

const at = (iso: string) => ({ at: new Date(iso) });

interface PlanCase {
  label: string;
  changes: Record<string, Partial<Spec> | null>;
  target: { at?: Date };
  chain: string[];
  databases: Record<string, string>;
  steps: [string, string[]][];
  dropped: string[];
  warning?: RegExp;
}

interface ErrorCase {
  label: string;
  entries: Record<string, Spec>;
  target: { at?: Date };
  message: RegExp;
}

describe("planRestore", () => {
  it.each<PlanCase>([
    {
      label: "latest: full + differential + incrementals, the newest section of each database wins",
      changes: {},
      target: {},
      chain: [F, D, I3, I4],
      databases: { template1: F, postgres: F, app: I3, new: I3, shop: I4 },
      steps: [[F, BASE], [I3, ["app", "new"]], [I4, ["shop"]]],
      dropped: ["old"],
    },
    {
      label: "--at between two incrementals takes the older one",
      changes: {},
      target: at("2024-01-07T04:30:00Z"),
      chain: [F, I1],
      databases: { template1: F, postgres: F, app: I1, old: F, shop: F },
      steps: [[F, [...BASE, "old", "shop"]], [I1, ["app"]]],
      dropped: [],
    },
    {
      label: "--at exactly at a backup includes it; a dropped database stays dropped",
      changes: {},
      target: at("2024-01-07T05:00:00Z"),
      chain: [F, I1, I2],
      databases: { template1: F, postgres: F, app: I1, shop: I2 },
      steps: [[F, BASE], [I1, ["app"]], [I2, ["shop"]]],
      dropped: ["old"],
    },
    {
      label: "--at on the differential skips the incrementals before it",
      changes: {},
      target: at("2024-01-10T03:30:00Z"),
      chain: [F, D],
      databases: { template1: F, postgres: F, app: D, shop: D },
      steps: [[F, BASE], [D, ["app", "shop"]]],
      dropped: ["old"],
    },
    {
      label: "unusable entries are skipped: a newer full without checksum, an incremental without manifest",
      changes: {
        "20240111_030000_full.sql.bz2": { databases: [...BASE, "app"], problem: "no checksum file" },
        "20240111_040000_incremental.sql.bz2": { parent: I4, databases: [...BASE], noManifest: true },
      },
      target: {},
      chain: [F, D, I3, I4],
      databases: { template1: F, postgres: F, app: I3, new: I3, shop: I4 },
      steps: [[F, BASE], [I3, ["app", "new"]], [I4, ["shop"]]],
      dropped: ["old"],
      warning: /left out as unusable: 20240111_040000_incremental\.sql\.bz2: no manifest .*; 20240111_030000_full\.sql\.bz2: no checksum file/,
    },
    {
      label: "broken parent (unusable incremental): falls back to full + differential",
      changes: { [I3]: { problem: "manifest is not valid JSON" } },
      target: {},
      chain: [F, D],
      databases: { template1: F, postgres: F, app: D, shop: D },
      steps: [[F, BASE], [D, ["app", "shop"]]],
      dropped: ["old"],
      warning: /parent 20240110_040000_incremental.sql.bz2 of .* is unusable .*up to 20240110_030000_differential.sql.bz2/,
    },
    {
      label: "missing differential: falls back to the full and the incrementals that reach it",
      changes: { [D]: null },
      target: {},
      chain: [F, I1, I2],
      databases: { template1: F, postgres: F, app: I1, shop: I2 },
      steps: [[F, BASE], [I1, ["app"]], [I2, ["shop"]]],
      dropped: ["old"],
      warning: /parent 20240110_030000_differential.sql.bz2 of .* is missing/,
    },
    {
      label: "unusable full under the newest differential: falls back to the older full's chain",
      changes: {
        [F0]: { databases: [...BASE, "app"] },
        [D0]: { parent: F0, databases: [...BASE, "app"], included: ["app"] },
        [F]: { problem: "no checksum file" },
      },
      target: at("2024-01-10T03:00:00Z"),
      chain: [F0, D0],
      databases: { template1: F0, postgres: F0, app: D0 },
      steps: [[F0, BASE], [D0, ["app"]]],
      dropped: [],
      warning: /parent 20240107_030000_full.sql.bz2 of 20240110_030000_differential.sql.bz2 is unusable/,
    },
  ])("$label", ({ changes, target, chain, databases, steps, dropped, warning }) => {
    const plan = planRestore(catalog(WEEK, changes), target);
    expect(plan.chain).toEqual(chain);
    expect(plan.point).toBe(chain.at(-1));
    expect(plan.globalsFrom).toBe(chain.at(-1));
    expect(plan.databases).toEqual(databases);
    expect(plan.steps.map((s) => [s.file, s.databases])).toEqual(steps);
    expect(plan.steps.filter((s) => s.globals).map((s) => s.file)).toEqual([chain.at(-1)]);
    expect(plan.dropped).toEqual(dropped);
    if (warning === undefined) expect(plan.warnings).toEqual([]);
    else expect(plan.warnings.join("\n")).toMatch(warning);
  });

  it.each<ErrorCase>([
    { label: "no backups at all", entries: {}, target: {}, message: /no backups found in BACKUP_DIR/ },
    { label: "--at before any backup", entries: WEEK, target: at("2024-01-01T00:00:00Z"), message: /oldest usable backup is 20240107_030000_full/ },
    { label: "every backup unusable", entries: { [F]: { databases: BASE, problem: "x" } }, target: {}, message: /none of the 1 backups is usable/ },
    {
      label: "no usable full before the point",
      entries: { [I1]: { parent: F, databases: BASE }, [F]: { databases: BASE, problem: "no checksum file" } },
      target: {},
      message: /no usable full backup at or before 2024-01-07T04:00:00.000Z/,
    },
    {
      label: "a database of the point that no file of the chain holds",
      entries: { ...WEEK, [I4]: { parent: I3, databases: [...BASE, "app", "ghost"], included: [] } },
      target: {},
      message: /broken: "ghost" existed at 20240110_050000_incremental/,
    },
    { label: "an invalid target time", entries: WEEK, target: { at: new Date("nope") }, message: /not a valid date/ },
  ])("throws a RestorePlanError: $label", ({ entries, target, message }) => {
    const run = () => planRestore(catalog(entries), target);
    expect(run).toThrow(RestorePlanError);
    expect(run).toThrow(message);
  });

  it.each([
    ["the newest backup", { [I4]: { parent: I3, databases: BASE, untrusted: true } }, {}, /^restore refused, nothing was changed: 20240110_050000_incremental\.sql\.bz2: signature missing; to restore the older 20240110_040000_incremental\.sql\.bz2 instead, give --at 2024-01-10T04:00:00\.000Z$/],
    ["the only backup", { [F]: { databases: BASE, untrusted: true } }, {}, /^restore refused, nothing was changed: 20240107_030000_full\.sql\.bz2: signature missing$/],
  ])("refuses (exit 4) when %s cannot be trusted, instead of passing over it quietly", (_what, changes, target, message) => {
    const entries = Object.keys(changes).includes(F) ? changes : { ...WEEK, ...changes };
    const err = (() => {
      try {
        planRestore(catalog(entries as Record<string, Spec>), target);
        return null;
      } catch (e) {
        return e as TaskError;
      }
    })();
    expect(err?.message).toMatch(message);
    expect(err?.exitCode).toBe(ExitCode.refused);
  });

  it("passes over an untrusted backup older than the point, and one after --at", () => {
    expect(planRestore(catalog(WEEK, { [I1]: { untrusted: true } }), {}).chain).toEqual([F, D, I3, I4]);
    expect(planRestore(catalog(WEEK, { [I4]: { untrusted: true } }), at("2024-01-10T04:30:00Z")).point).toBe(I3);
  });

  it("keeps awkward database names as keys, __proto__ included", () => {
    const names = [...BASE, "__proto__", 'quo"te', "with space", "ünïcødé", "new\nline"];
    const plan = planRestore([entry(F, { databases: names })], {});
    expect(Object.keys(plan.databases)).toEqual(names);
    expect(Object.hasOwn(plan.databases, "__proto__")).toBe(true);
    expect(plan.steps).toEqual([{ file: F, path: `/backups/full/${F}`, tier: "full", databases: names, globals: true }]);
  });
});

describe("formatPlan", () => {
  it("prints the target, chain, one row per step, dropped databases and warnings", () => {
    const text = formatPlan(planRestore(catalog(WEEK, { [D]: null }), at("2024-01-11T00:00:00Z")));
    expect(text).toContain("Target:       2024-01-11T00:00:00.000Z\n");
    expect(text).toContain(`Chain:        ${F} -> ${I1} -> ${I2}\n`);
    expect(text).toMatch(/^BACKUP +TIER +GLOBALS +DATABASES$/m);
    expect(text).toMatch(new RegExp(`^${I2} +incremental +yes +shop$`, "m"));
    expect(text).toContain("Not restored (dropped before the restore point): old\n");
    expect(text).toMatch(/^Warning: parent .* is missing/m);
  });

  it("quotes names that are not plain words", () => {
    const text = formatPlan(planRestore([entry(F, { databases: ["app", "with space", 'quo"te', "new\nline"] })], {}));
    expect(text).toContain('app, "with space", "quo\\"te", "new\\nline"');
  });
});
