import { describe, expect, it } from "vitest";
import { resolveConfig } from "../../../lib/config/config.js";
import { describeConnectError } from "../../../lib/postgres/connection.js";

const rejected = Object.assign(new Error('password authentication failed for user "postgres"'), { code: "28P01" });

describe("describeConnectError", () => {
  it("points at the passfile's line when the password came from PGPASSFILE", () => {
    const cfg = resolveConfig({ BACKUP_DIR: "/b", PGHOST: "db", PGPASSFILE: "/etc/hostname" }).pg;
    const err = describeConnectError(cfg, "postgres", rejected);
    expect(err.exitCode).toBe(8);
    expect(err.message).toMatch(/password from PGPASSFILE=\/etc\/hostname\); check that \/etc\/hostname has a line db:5432:\*:postgres:<password> .*mode 0600/);
  });

  it("points at the secret or variable otherwise", () => {
    const cfg = resolveConfig({ BACKUP_DIR: "/b", PGPASSWORD: "pw" }).pg;
    expect(describeConnectError(cfg, "postgres", rejected).message).toMatch(/password from PGPASSWORD\); check that secret or variable/);
  });
});
