import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { resolveConfig } from "../../../lib/config/config.js";
import { ConfigError } from "../../../lib/core/errors.js";

const base = { BACKUP_DIR: "/backups" };

describe("resolveConfig", () => {
  it("has the documented defaults and is frozen", () => {
    const c = resolveConfig(base);
    expect(c.pg).toMatchObject({ host: "postgres", port: 5432, user: "postgres", database: "postgres" });
    expect(c.tz).toBe("Europe/Berlin");
    expect(c.compression.codec).toBe("bzip2");
    expect(c.compression.level).toBe(9);
    expect(c.retention).toEqual({ keepAllDays: 14, keepDifferentialDays: 42, minFull: 2, keepFullDays: Infinity });
    expect(c.lock).toEqual({ mode: "wait", timeoutSeconds: 3600 });
    expect(c.s3).toBeNull();
    expect(c.logFile).toBe("/backups/backup.log");
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.pg)).toBe(true);
  });

  it.each([
    [{ BACKUP_COMPRESSION: "zstd" }, (c: ReturnType<typeof resolveConfig>) => c.compression.codec === "zstd" && c.compression.level === 1],
    [{ BACKUP_COMPRESSION: "GZIP", BACKUP_COMPRESSION_LEVEL: "1" }, (c: ReturnType<typeof resolveConfig>) => c.compression.codec === "gzip" && c.compression.level === 1],
    [{ BACKUP_COMPRESSION: "none" }, (c: ReturnType<typeof resolveConfig>) => c.compression.level === null],
    [{ PGPORT: "6543" }, (c: ReturnType<typeof resolveConfig>) => c.pg.port === 6543],
    [{ LOCK_MODE: "skip", LOCK_TIMEOUT_SECONDS: "0" }, (c: ReturnType<typeof resolveConfig>) => c.lock.mode === "skip" && c.lock.timeoutSeconds === 0],
    [{ TZ: "UTC" }, (c: ReturnType<typeof resolveConfig>) => c.tz === "UTC"],
    [{}, (c: ReturnType<typeof resolveConfig>) => c.baseBackup.checkpoint === "fast"],
    [{ BASE_BACKUP_CHECKPOINT: "Spread" }, (c: ReturnType<typeof resolveConfig>) => c.baseBackup.checkpoint === "spread"],
    [{ RETENTION_KEEP_FULL_DAYS: "90" }, (c: ReturnType<typeof resolveConfig>) => c.retention.keepFullDays === 90],
    [{ LOG_FILE: "" }, (c: ReturnType<typeof resolveConfig>) => c.logFile === null],
    [{ S3_BUCKET: "bkt", S3_ENDPOINT: "http://127.0.0.1:9000" }, (c: ReturnType<typeof resolveConfig>) => c.s3?.forcePathStyle === true && c.s3.region === "us-east-1"],
    [{ S3_BUCKET: "pg.backups-1", S3_SSE: "AES256" }, (c: ReturnType<typeof resolveConfig>) => c.s3?.sse === "AES256"],
    [{ S3_BUCKET: "bkt", S3_SSE: "aws:kms" }, (c: ReturnType<typeof resolveConfig>) => c.s3?.sse === "aws:kms"],
    [{ S3_BUCKET: "bkt", S3_SSE: "aws:kms:arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", S3_REGION: "eu-central-1" }, (c: ReturnType<typeof resolveConfig>) => c.s3?.region === "eu-central-1"],
    [{ S3_BUCKET: "bkt", S3_SSE: "aws:kms:alias/pg-backups" }, (c: ReturnType<typeof resolveConfig>) => c.s3?.sse === "aws:kms:alias/pg-backups"],
    [{ S3_BUCKET: "bkt" }, (c: ReturnType<typeof resolveConfig>) => c.s3?.walSnapshotSeconds === 5],
    [{ S3_BUCKET: "bkt", S3_WAL_SNAPSHOT_SECONDS: "0" }, (c: ReturnType<typeof resolveConfig>) => c.s3?.walSnapshotSeconds === 0],
    [{ BACKUP_COMPRESSION: "none", BACKUP_COMPRESSION_LEVEL: "" }, (c: ReturnType<typeof resolveConfig>) => c.compression.level === null],
    [{ METRICS_FILE: "/var/lib/node_exporter/pgsb.prom" }, (c: ReturnType<typeof resolveConfig>) => c.metricsFile === "/var/lib/node_exporter/pgsb.prom"],
    [{ PG_BINDIR: "/usr/lib/postgresql/15/bin" }, () => true],
    [{ VERIFY_PGHOST: "verify-db", VERIFY_PGPORT: "5433" }, () => true],
    [{ PGPASSWORD: "x", PGPASSFILE: "/nonexistent" }, (c: ReturnType<typeof resolveConfig>) => c.pg.passwordSource === "PGPASSWORD"],
  ])("accepts %j", (env, check) => {
    expect(check(resolveConfig({ ...base, ...env }))).toBe(true);
  });

  it.each([
    [{ BACKUP_DIR: "backups" }, /BACKUP_DIR="backups" is not an absolute path/],
    [{ BACKUP_COMPRESSION: "lzma" }, /BACKUP_COMPRESSION="lzma" is not one of bzip2, zstd, gzip, none/],
    [{ BACKUP_COMPRESSION_LEVEL: "12" }, /BACKUP_COMPRESSION_LEVEL=12 is out of range 1\.\.9; bzip2 levels are 1\.\.9/],
    [{ BACKUP_COMPRESSION_LEVEL: "fast" }, /BACKUP_COMPRESSION_LEVEL="fast" is not a whole number/],
    [{ PGPORT: "70000" }, /PGPORT=70000 is out of range 1\.\.65535/],
    [{ TZ: "Mars/Olympus" }, /TZ="Mars\/Olympus" is not a known time zone/],
    [{ LOCK_MODE: "block" }, /LOCK_MODE="block" is not one of wait, skip/],
    [{ BASE_BACKUP_CHECKPOINT: "now" }, /BASE_BACKUP_CHECKPOINT="now" is not one of fast, spread/],
    [{ RETENTION_KEEP_ALL_DAYS: "50" }, /RETENTION_KEEP_DIFFERENTIAL_DAYS=42 is below RETENTION_KEEP_ALL_DAYS=50/],
    [{ RETENTION_MIN_FULL: "0" }, /RETENTION_MIN_FULL=0 is out of range 1\.\.1000/],
    [{ RETENTION_KEEP_FULL_DAYS: "7" }, /RETENTION_KEEP_FULL_DAYS=7 is out of range 42\.\.36500/],
    [{ POSTGRES_PASSWORD_FILE: "/nonexistent/pw" }, /POSTGRES_PASSWORD_FILE=\/nonexistent\/pw is not readable \(ENOENT\); mount the postgres_password secret or set PGPASSWORD/],
    [{ S3_BUCKET: "bkt", S3_ENDPOINT: "minio:9000" }, /S3_ENDPOINT="minio:9000" is not an http\(s\) URL/],
    [{ S3_BUCKET: "bkt", S3_FORCE_PATH_STYLE: "maybe" }, /S3_FORCE_PATH_STYLE="maybe" is not a boolean/],
    [{ S3_BUCKET: "bkt", AWS_ACCESS_KEY_ID_FILE: "/etc/hostname" }, /must be set together/],
    [{ LOG_LEVEL: "loud" }, /LOG_LEVEL="loud" is not one of/],
    [{ S3_BUCKET: "bkt", S3_SSE: "rot13" }, /S3_SSE="rot13" is not a server-side encryption S3 knows; use AES256, aws:kms, or aws:kms:<key id or ARN>/],
    [{ S3_BUCKET: "bkt", S3_SSE: "aws:kms:" }, /S3_SSE="aws:kms:" is not a server-side encryption/],
    [{ S3_BUCKET: "bkt", S3_SSE: "aws:kms:key with spaces" }, /S3_SSE=.* is not a server-side encryption/],
    [{ S3_BUCKET: "my backups" }, /S3_BUCKET="my backups" may hold only lowercase letters, digits, dots and hyphens/],
    [{ S3_BUCKET: "Backups" }, /S3_BUCKET="Backups" may hold only lowercase letters/],
    [{ S3_BUCKET: "ab" }, /S3_BUCKET="ab" is not 3 to 63 characters long/],
    [{ S3_BUCKET: "a".repeat(64) }, /is not 3 to 63 characters long/],
    [{ S3_BUCKET: "-bkt" }, /must begin and end with a letter or digit/],
    [{ S3_BUCKET: "my..bkt" }, /must not hold two adjacent dots/],
    [{ S3_BUCKET: "192.168.1.10" }, /must not look like an IP address/],
    [{ S3_BUCKET: "bkt", S3_REGION: "eu central 1" }, /S3_REGION="eu central 1" is not a region name/],
    [{ S3_BUCKET: "bkt", S3_WAL_SNAPSHOT_SECONDS: "often" }, /S3_WAL_SNAPSHOT_SECONDS="often" is not a whole number; seconds between uploads of the WAL segment being received/],
    [{ S3_BUCKET: "bkt", S3_REGION: "EU-CENTRAL-1" }, /S3_REGION="EU-CENTRAL-1" is not a region name/],
    [{ BACKUP_COMPRESSION: "none", BACKUP_COMPRESSION_LEVEL: "5" }, /BACKUP_COMPRESSION_LEVEL=5 is set but BACKUP_COMPRESSION=none compresses nothing; unset BACKUP_COMPRESSION_LEVEL/],
    [{ METRICS_FILE: "metrics.prom" }, /METRICS_FILE="metrics\.prom" is not an absolute path/],
    [{ PG_BINDIR: "/nonexistent" }, /PG_BINDIR=\/nonexistent is not a folder; point it at the folder with initdb and pg_ctl/],
    [{ PG_BINDIR: "/etc/passwd" }, /PG_BINDIR=\/etc\/passwd is not a folder/],
    [{ PG_BINDIR: "/usr/bin" }, /PG_BINDIR=\/usr\/bin has no executable initdb/],
    [{ VERIFY_PGPORT: "5433" }, /VERIFY_PGPORT="5433" is set but VERIFY_PGHOST is not; set VERIFY_PGHOST/],
    [{ VERIFY_PGUSER: "v" }, /VERIFY_PGUSER="v" is set but VERIFY_PGHOST is not/],
    [{ PGPASSFILE: "/nonexistent/pgpass" }, /PGPASSFILE=\/nonexistent\/pgpass is not readable \(ENOENT\); mount the passfile there/],
    [{ PGPASSFILE: "/etc" }, /PGPASSFILE=\/etc is not a file/],
  ])("rejects %j", (env, message) => {
    expect(() => resolveConfig({ ...base, ...env })).toThrow(message);
  });

  it("reads the password from the secret file, strips one newline, and never renders it", () => {
    const file = join(tmpdir(), `pgsb-pw-${process.pid}`);
    writeFileSync(file, "hunter2-secret\n");
    const c = resolveConfig({ ...base, POSTGRES_PASSWORD_FILE: file });
    expect(c.pg.password?.reveal()).toBe("hunter2-secret");
    expect(c.pg.passwordSource).toBe(`POSTGRES_PASSWORD_FILE=${file}`);
    expect(JSON.stringify(c)).not.toContain("hunter2");
    expect(inspect(c, { depth: 5 })).not.toContain("hunter2");
    expect(String(c.pg.password)).toBe("[redacted]");
  });

  it("prefers PGPASSWORD and says so", () => {
    const c = resolveConfig({ ...base, PGPASSWORD: "x", POSTGRES_PASSWORD_FILE: "/nonexistent" });
    expect(c.pg.passwordSource).toBe("PGPASSWORD");
  });
});

describe("notification settings (HEALTHCHECK_URL, NOTIFY_URL, NOTIFY_ON, NOTIFY_TIMEOUT_SECONDS)", () => {
  it("is off by default and notifies on failure with a 10 s timeout", () => {
    expect(resolveConfig(base).notify).toEqual({ healthcheckUrl: null, webhookUrl: null, on: "failure", timeoutSeconds: 10 });
  });

  it("keeps the URLs as secrets and reads the _FILE variants like POSTGRES_PASSWORD_FILE", () => {
    const file = join(tmpdir(), `pgsb-hook-${process.pid}`);
    writeFileSync(file, "https://hooks.example.com/services/T0/B0/tok-from-file\n");
    const c = resolveConfig({ ...base, HEALTHCHECK_URL: "https://hc-ping.com/0d1e-tok", NOTIFY_URL_FILE: file, NOTIFY_ON: "always", NOTIFY_TIMEOUT_SECONDS: "3" });
    expect(c.notify.healthcheckUrl?.reveal()).toBe("https://hc-ping.com/0d1e-tok");
    expect(c.notify.webhookUrl?.reveal()).toBe("https://hooks.example.com/services/T0/B0/tok-from-file");
    expect(c.notify.on).toBe("always");
    expect(c.notify.timeoutSeconds).toBe(3);
    expect(JSON.stringify(c) + inspect(c, { depth: 5 })).not.toMatch(/tok/);
  });

  it.each([
    [{ HEALTHCHECK_URL: "ftp://hc.example.com/tok-1" }, /^HEALTHCHECK_URL is a ftp: URL, not http\(s\)/],
    [{ HEALTHCHECK_URL: "hc-ping.com/tok-2" }, /^HEALTHCHECK_URL does not hold a valid URL/],
    [{ NOTIFY_URL: "mailto:ops@example.com?tok-3" }, /^NOTIFY_URL is a mailto: URL/],
    [{ NOTIFY_URL_FILE: "/nonexistent/tok-4" }, /^NOTIFY_URL_FILE=\/nonexistent\/tok-4 is not readable \(ENOENT\)/],
    [{ HEALTHCHECK_URL: "https://a/tok-5", HEALTHCHECK_URL_FILE: "/etc/hostname" }, /^HEALTHCHECK_URL and HEALTHCHECK_URL_FILE are both set/],
    [{ NOTIFY_ON: "success" }, /^NOTIFY_ON="success" is not one of failure, always/],
    [{ NOTIFY_TIMEOUT_SECONDS: "0" }, /^NOTIFY_TIMEOUT_SECONDS=0 is out of range 1\.\.300/],
    [{ NOTIFY_TIMEOUT_SECONDS: "ten" }, /^NOTIFY_TIMEOUT_SECONDS="ten" is not a whole number/],
  ])("rejects %j, naming the variable and not the URL", (env, message) => {
    let thrown: unknown;
    try {
      resolveConfig({ ...base, ...env });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    const text = (thrown as Error).message;
    expect(text).toMatch(message);
    if (!("NOTIFY_URL_FILE" in env)) expect(text + String((thrown as Error).cause ?? "")).not.toMatch(/tok-/);
  });
});
