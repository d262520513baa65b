// The Swarm stack file, as Docker itself reads it: `docker stack config` validates the
// schema, resolves the anchors and interpolates ${REGISTRY}/${VERSION} offline (no engine).
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const STACK_FILE = "stack/docker-compose.swarm.yml";
const BACKUP_MOUNT = {
  type: "bind",
  source: "/mnt/storagebox",
  target: "/storagebox",
  bind: { propagation: "rslave" },
};
const TASK_IMAGE = "reg.test:5000/pg-swarm-backup-task:9.8.7";

// swarm-cronjob reads 6-field cron with seconds first: "s m h dom mon dow".
const TASKS = [
  { name: "backup-full", command: ["backup", "full"], schedule: "0 0 3 * * 0", lockMode: "wait" },
  { name: "backup-differential", command: ["backup", "differential"], schedule: "0 0 3 * * 3", lockMode: "wait" },
  { name: "backup-incremental", command: ["backup", "incremental"], schedule: "0 0 * * * *", lockMode: "wait" },
  { name: "backup-base", command: ["backup", "base"], schedule: "0 0 2 * * 6", lockMode: "wait" },
  { name: "cleanup", command: ["cleanup"], schedule: "0 30 4 * * *", lockMode: "wait" },
  { name: "verify", command: ["verify", "--restore"], schedule: "0 0 6 * * 0", lockMode: "wait" },
  { name: "auto-restore", command: ["auto-restore", "--wait", "30"], schedule: "0 * * * * *", lockMode: "skip" },
];

// Loosely typed on purpose: the shape is what the assertions below check.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Service = Record<string, any>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
let stack: Record<string, any>;

function service(name: string): Service {
  const s = (stack.services as Record<string, Service>)[name];
  if (s === undefined) throw new Error(`service ${name} missing from ${STACK_FILE}`);
  return s;
}

/** "512M", "2G" or the byte count docker prints. */
function bytes(v: string | number): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)b?$/i.exec(String(v));
  if (!m) throw new Error(`not a size: ${v}`);
  const unit = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as "" | "k" | "m" | "g"];
  return Number(m[1]) * unit;
}

/** Go durations as docker prints them: "30s", "2m0s", "1h0m0s". */
function seconds(v: string): number {
  const parts = [...v.matchAll(/(\d+(?:\.\d+)?)(h|m|s)/g)];
  if (parts.length === 0) throw new Error(`not a duration: ${v}`);
  return parts.reduce((sum, [, n, u]) => sum + Number(n) * { h: 3600, m: 60, s: 1 }[u as "h" | "m" | "s"], 0);
}

beforeAll(() => {
  try {
    execFileSync("docker", ["--version"], { stdio: "pipe" });
  } catch (err) {
    throw new Error(
      "the docker CLI is not on PATH: this test validates the stack file with `docker stack config`, " +
        "which needs only the client (no engine); install the docker CLI and run again",
      { cause: err },
    );
  }
  const env: NodeJS.ProcessEnv = { ...process.env, VERSION: "9.8.7", REGISTRY: "reg.test:5000" };
  delete env.POSTGRES_CONF_NAME;
  const out = execFileSync("docker", ["stack", "config", "-c", STACK_FILE], { cwd: ROOT, env, encoding: "utf8" });
  stack = parse(out);
});

describe("stack file", () => {
  it("declares exactly postgres, swarm-cronjob and one service per task", () => {
    expect(Object.keys(stack.services).sort()).toEqual(["postgres", "swarm-cronjob", "wal-receive", ...TASKS.map((t) => t.name)].sort());
  });

  it("uses the pre-created network, secret and config, and a named data volume", () => {
    expect(stack.networks["backend-net"]).toMatchObject({ external: true, name: "backend-net" });
    expect(stack.secrets.postgres_password).toMatchObject({ external: true, name: "postgres_password" });
    expect(stack.configs["postgresql-conf"]).toMatchObject({ external: true, name: "postgresql-conf" });
    expect(stack.volumes).toHaveProperty("postgres-data");
  });
});

describe("postgres service", () => {
  it("runs the versioned postgres image with the password from the secret", () => {
    const pg = service("postgres");
    expect(pg.image).toBe("reg.test:5000/pg-swarm-backup-postgres:9.8.7");
    expect(pg.environment).toMatchObject({
      POSTGRES_PASSWORD_FILE: "/run/secrets/postgres_password",
      TZ: "Europe/Berlin",
      PGDATA: "/var/lib/postgresql/data",
    });
    expect(pg.secrets).toEqual([{ source: "postgres_password" }]);
  });

  it("mounts postgresql.conf where the image's CMD expects it", () => {
    expect(service("postgres").configs).toEqual([
      expect.objectContaining({ source: "postgresql-conf", target: "/etc/postgresql/postgresql.conf" }),
    ]);
  });

  it("keeps PGDATA on the named volume and sees the storage box through an rslave bind mount", () => {
    const volumes = service("postgres").volumes as Service[];
    expect(volumes).toContainEqual({ type: "volume", source: "postgres-data", target: "/var/lib/postgresql/data" });
    expect(volumes).toContainEqual(BACKUP_MOUNT);
  });

  it("is healthy only when psql can run SELECT 1, checked every 30 s with 3 retries", () => {
    const hc = service("postgres").healthcheck;
    expect(hc.test[0]).toBe("CMD-SHELL");
    expect(hc.test.slice(1).join(" ")).toMatch(/^psql .*-c 'SELECT 1'/);
    expect(seconds(hc.interval)).toBe(30);
    expect(hc.retries).toBe(3);
    expect(seconds(hc.timeout)).toBeLessThan(seconds(hc.interval));
  });

  it("runs on the database node with 0.5-2 CPUs and 512M-2G memory", () => {
    const deploy = service("postgres").deploy;
    expect(deploy.replicas ?? 1).toBe(1);
    expect(deploy.placement.constraints).toEqual(["node.labels.database == true"]);
    expect(Number(deploy.resources.limits.cpus)).toBe(2);
    expect(bytes(deploy.resources.limits.memory)).toBe(bytes("2G"));
    expect(Number(deploy.resources.reservations.cpus)).toBe(0.5);
    expect(bytes(deploy.resources.reservations.memory)).toBe(bytes("512M"));
  });

  it("never runs two servers on one data directory during an update", () => {
    expect(service("postgres").deploy.update_config.order).toBe("stop-first");
  });

  it("gets well over Docker's default 10 s to shut down cleanly", () => {
    expect(seconds(service("postgres").stop_grace_period)).toBeGreaterThanOrEqual(60);
  });

  it("is on backend-net", () => {
    expect(Object.keys(service("postgres").networks)).toEqual(["backend-net"]);
  });

  // No virtual IP: IPVS drops connections idle for 15 minutes, and a kernel without IPVS carries
  // no traffic over a VIP at all (the e2e's engine: connections to the VIP timed out).
  it("is reached by its own address (dnsrr), publishing no ports", () => {
    expect(service("postgres").deploy.endpoint_mode).toBe("dnsrr");
    expect(service("postgres").ports).toBeUndefined();
  });
});

describe("backup-base service", () => {
  it("writes its base backups with zstd (the other tasks keep the stack's codec)", () => {
    expect(service("backup-base").environment.BACKUP_COMPRESSION).toBe("zstd");
    expect(service("backup-full").environment).not.toHaveProperty("BACKUP_COMPRESSION");
  });
});

describe("swarm-cronjob service", () => {
  it("runs a pinned image on a manager with the Docker socket and the stack's time zone", () => {
    const cron = service("swarm-cronjob");
    expect(cron.image).toMatch(/^crazymax\/swarm-cronjob:\d+\.\d+\.\d+$/);
    expect(cron.deploy.placement.constraints).toEqual(["node.role == manager"]);
    expect(cron.volumes).toContainEqual({ type: "bind", source: "/var/run/docker.sock", target: "/var/run/docker.sock" });
    expect(cron.environment.TZ).toBe("Europe/Berlin");
    expect(cron.environment).toHaveProperty("LOG_LEVEL");
  });
});

describe.each(TASKS)("task service $name", ({ name, command, schedule, lockMode }) => {
  it("runs the task image with its CLI arguments", () => {
    expect(service(name).image).toBe(TASK_IMAGE);
    expect(service(name).command).toEqual(command);
  });

  it("stays at 0 replicas and never restarts, so only swarm-cronjob starts it", () => {
    const deploy = service(name).deploy;
    expect(deploy.mode).toBe("replicated");
    expect(deploy.replicas).toBe(0);
    expect(deploy.restart_policy.condition).toBe("none");
  });

  it(`is scheduled at "${schedule}" and skipped while a previous run is still going`, () => {
    // Service (deploy) labels: swarm-cronjob reads the service spec, not container labels.
    expect(service(name).deploy.labels).toEqual({
      "swarm.cronjob.enable": "true",
      "swarm.cronjob.schedule": schedule,
      "swarm.cronjob.skip-running": "true",
    });
    expect(service(name).labels).toBeUndefined();
  });

  it("reaches postgres with the secret over backend-net and writes to the storage box", () => {
    const s = service(name);
    expect(s.environment).toEqual(
      expect.objectContaining({
        PGHOST: "postgres",
        PGUSER: "postgres",
        POSTGRES_PASSWORD_FILE: "/run/secrets/postgres_password",
        BACKUP_DIR: "/storagebox/backups/postgresql",
        TZ: "Europe/Berlin",
        LOCK_MODE: lockMode,
      }),
    );
    expect(s.secrets).toEqual([{ source: "postgres_password" }]);
    expect(Object.keys(s.networks)).toEqual(["backend-net"]);
    expect(s.volumes).toEqual([BACKUP_MOUNT]);
  });

  it("sees a dead server within a bound: keepalive probes every 5 s, 3 unanswered end the connection", () => {
    expect(service(name).sysctls).toEqual({ "net.ipv4.tcp_keepalive_intvl": "5", "net.ipv4.tcp_keepalive_probes": "3" });
  });

  it("keeps BACKUP_DIR on the box, below the bound mount point (a box mounted later is seen; unmounted, BACKUP_DIR is missing)", () => {
    expect(BACKUP_MOUNT.source).toBe("/mnt/storagebox");
    expect(service(name).environment.BACKUP_DIR.startsWith(`${BACKUP_MOUNT.target}/`)).toBe(true);
  });

  it("runs on the database node within a memory limit", () => {
    const deploy = service(name).deploy;
    expect(deploy.placement.constraints).toEqual(["node.labels.database == true"]);
    expect(Number(deploy.resources.limits.cpus)).toBe(1);
    expect(bytes(deploy.resources.limits.memory)).toBe(bytes(name === "verify" ? "1G" : "512M"));
  });
});

describe("encryption (stack/docker-compose.encryption.yml layered over the stack file)", () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let enc: Record<string, any>;
  beforeAll(() => {
    const env: NodeJS.ProcessEnv = { ...process.env, VERSION: "9.8.7", REGISTRY: "reg.test:5000" };
    delete env.AGE_RECIPIENTS_CONFIG;
    delete env.AGE_IDENTITY_SECRET;
    enc = parse(execFileSync("docker", ["stack", "config", "-c", STACK_FILE, "-c", "stack/docker-compose.encryption.yml"], { cwd: ROOT, env, encoding: "utf8" }));
  });
  const names = (list: unknown): string[] => ((list ?? []) as { source: string }[]).map((x) => x.source).sort();

  it.each(["backup-full", "backup-differential", "backup-incremental", "backup-base", "wal-receive"])("gives %s the public keys (a config) and no identity", (name) => {
    const s = enc.services[name] as Service;
    expect(names(s.configs)).toEqual(["age_recipients"]);
    expect(s.environment.AGE_RECIPIENTS_FILE).toBe("/run/configs/age_recipients");
    expect(names(s.secrets)).toEqual(["postgres_password"]);
    expect(s.environment).not.toHaveProperty("AGE_IDENTITY_FILE");
  });

  it.each(["verify", "auto-restore"])("gives %s the identity (a secret) to read backups back", (name) => {
    const s = enc.services[name] as Service;
    expect(names(s.secrets)).toEqual(["age_identity", "postgres_password"]);
    expect(s.environment.AGE_IDENTITY_FILE).toBe("/run/secrets/age_identity");
  });

  it("gives cleanup and postgres neither, and keeps every other setting", () => {
    for (const name of ["cleanup", "postgres"]) expect(Object.keys((enc.services[name] as Service).environment ?? {}).filter((k) => k.startsWith("AGE_"))).toEqual([]);
    for (const t of TASKS) expect((enc.services[t.name] as Service).command).toEqual(t.command);
    expect(enc.configs.age_recipients).toMatchObject({ external: true, name: "age_recipients" });
    expect(enc.secrets.age_identity).toMatchObject({ external: true, name: "age_identity" });
  });

  it("keeps wal-receive's spool volume and every other setting of wal-receive", () => {
    const s = enc.services["wal-receive"] as Service;
    expect(s.environment).toMatchObject({ ...service("wal-receive").environment });
    expect(s.volumes).toEqual(service("wal-receive").volumes);
    expect(s.deploy).toEqual(service("wal-receive").deploy);
  });

  // Swarm configs and secrets cannot change: a rotation deploys new ones under new names (docs/runbook.md).
  it("takes the names of the recipients config and the identity secret from AGE_RECIPIENTS_CONFIG and AGE_IDENTITY_SECRET", () => {
    const env: NodeJS.ProcessEnv = { ...process.env, VERSION: "9.8.7", REGISTRY: "reg.test:5000", AGE_RECIPIENTS_CONFIG: "age_recipients_2", AGE_IDENTITY_SECRET: "age_identity_2" };
    const rotated = parse(execFileSync("docker", ["stack", "config", "-c", STACK_FILE, "-c", "stack/docker-compose.encryption.yml"], { cwd: ROOT, env, encoding: "utf8" }));
    expect(rotated.configs.age_recipients).toMatchObject({ external: true, name: "age_recipients_2" });
    expect(rotated.secrets.age_identity).toMatchObject({ external: true, name: "age_identity_2" });
    expect(names(rotated.services["backup-full"].configs)).toEqual(["age_recipients"]);
  });
});

describe("S3 mirror (stack/docker-compose.s3.yml layered over the stack file)", () => {
  const config = (extra: Record<string, string>) => {
    const env: NodeJS.ProcessEnv = { ...process.env, VERSION: "9.8.7", REGISTRY: "reg.test:5000", ...extra };
    for (const k of Object.keys(env)) if (k.startsWith("S3_") && !(k in extra)) delete env[k];
    return execFileSync("docker", ["stack", "config", "-c", STACK_FILE, "-c", "stack/docker-compose.s3.yml"], { cwd: ROOT, env, encoding: "utf8", stdio: "pipe" });
  };
  const MIRRORED = ["backup-full", "backup-differential", "backup-incremental", "backup-base", "cleanup", "auto-restore", "wal-receive"];

  it.each(MIRRORED)("gives %s the bucket's settings and the credentials as secrets", (name) => {
    const s3 = parse(config({ S3_BUCKET: "pg-backups", S3_ENDPOINT: "https://s3.example.com", S3_PREFIX: "prod" }));
    const s = s3.services[name] as Service;
    expect(s.environment).toMatchObject({
      S3_BUCKET: "pg-backups",
      S3_ENDPOINT: "https://s3.example.com",
      S3_PREFIX: "prod",
      AWS_ACCESS_KEY_ID_FILE: "/run/secrets/s3_access_key_id",
      AWS_SECRET_ACCESS_KEY_FILE: "/run/secrets/s3_secret_access_key",
    });
    // Unset settings are empty, which the tasks read as unset (lib/config/envValues.ts).
    expect(s.environment.S3_REGION).toBe("");
    expect(((s.secrets ?? []) as { source: string }[]).map((x) => x.source).sort()).toEqual(["postgres_password", "s3_access_key_id", "s3_secret_access_key"]);
    expect(s.environment).toMatchObject({ ...service(name).environment });
  });

  it("gives wal-receive how often it uploads the segment being received", () => {
    expect((parse(config({ S3_BUCKET: "pg-backups", S3_WAL_SNAPSHOT_SECONDS: "60" })).services["wal-receive"] as Service).environment.S3_WAL_SNAPSHOT_SECONDS).toBe("60");
    expect((parse(config({ S3_BUCKET: "pg-backups" })).services["wal-receive"] as Service).environment.S3_WAL_SNAPSHOT_SECONDS).toBe("");
  });

  it("leaves postgres and verify without the mirror", () => {
    const s3 = parse(config({ S3_BUCKET: "pg-backups" }));
    for (const name of ["postgres", "verify"]) expect(Object.keys((s3.services[name] as Service).environment ?? {}).filter((k) => k.startsWith("S3_") || k.startsWith("AWS_"))).toEqual([]);
    expect(s3.secrets.s3_access_key_id).toMatchObject({ external: true, name: "s3_access_key_id" });
    expect(parse(config({ S3_BUCKET: "b-1", S3_ACCESS_KEY_ID_SECRET: "s3_key_2" })).secrets.s3_access_key_id).toMatchObject({ external: true, name: "s3_key_2" });
  });

  it("is refused without S3_BUCKET, naming it", () => {
    expect(() => config({})).toThrow(/S3_BUCKET is the bucket the backups are mirrored to/);
  });
});

describe("wal-receive service (issue 19)", () => {
  it("runs the task image's wal-receive, one replica restarted on failure, not scheduled", () => {
    const s = service("wal-receive");
    expect(s.image).toBe(TASK_IMAGE);
    expect(s.command).toEqual(["wal-receive"]);
    expect(s.deploy.mode).toBe("replicated");
    expect(s.deploy.replicas).toBe(1);
    expect(s.deploy.restart_policy.condition).toBe("on-failure");
    expect(s.deploy.labels ?? {}).not.toHaveProperty("swarm.cronjob.enable");
  });

  it("is placed with the storage box and gets the backup services' secret, network and mount", () => {
    const s = service("wal-receive");
    expect(s.deploy.placement.constraints).toEqual(["node.labels.database == true"]);
    expect(s.secrets).toEqual([{ source: "postgres_password" }]);
    expect(Object.keys(s.networks)).toEqual(["backend-net"]);
    expect(s.volumes).toContainEqual(BACKUP_MOUNT);
    expect(s.environment).toEqual(expect.objectContaining({ PGHOST: "postgres", POSTGRES_PASSWORD_FILE: "/run/secrets/postgres_password", BACKUP_DIR: "/storagebox/backups/postgresql", WAL_SLOT: "pg_swarm_backup", WAL_COMPRESSION: "gzip" }));
    expect(bytes(s.deploy.resources.limits.memory)).toBeLessThanOrEqual(bytes("512M"));
  });

  // Signed (the default) or encrypted, pg_receivewal writes into a spool from which wal-receive ships:
  // on a named volume, a task restarted on the same node ships what it had completed but not shipped.
  it("spools into a named volume at WAL_SPOOL_DIR, outside BACKUP_DIR, with the default stop grace", () => {
    const s = service("wal-receive");
    const spool = s.environment.WAL_SPOOL_DIR as string;
    expect(spool).toBe("/var/lib/pgsb-wal-spool");
    expect(s.volumes).toEqual([BACKUP_MOUNT, { type: "volume", source: "wal-spool", target: spool }]);
    expect(stack.volumes).toHaveProperty("wal-spool");
    expect(spool.startsWith(`${BACKUP_MOUNT.target}/`)).toBe(false);
    // Its last ship at SIGTERM takes < 3 s: Docker's default 10 s grace.
    expect(s.stop_grace_period).toBeUndefined();
  });
});

describe("signing (stack/docker-compose.signing.yml layered over the stack file)", () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let signed: Record<string, any>;
  beforeAll(() => {
    const env: NodeJS.ProcessEnv = { ...process.env, VERSION: "9.8.7", REGISTRY: "reg.test:5000" };
    delete env.BACKUP_SIGNING_KEY_SECRET;
    delete env.BACKUP_VERIFY_KEY_SECRET;
    const out = execFileSync("docker", ["stack", "config", "-c", STACK_FILE, "-c", "stack/docker-compose.signing.yml"], { cwd: ROOT, env, encoding: "utf8" });
    signed = parse(out);
  });
  const secretsOf = (s: Service): string[] => ((s.secrets ?? []) as { source: string }[]).map((x) => x.source).sort();
  const BACKUPS = ["backup-full", "backup-differential", "backup-incremental", "backup-base", "wal-receive"];
  const READERS = ["cleanup", "verify", "auto-restore"];

  it("is off in the stack file alone, so SIGNING=0 needs no key secrets (make deploy layers the signing file by default)", () => {
    expect(Object.keys(stack.secrets)).toEqual(["postgres_password"]);
    for (const t of TASKS) expect(Object.keys(service(t.name).environment).filter((k) => k.startsWith("BACKUP_") && k.endsWith("_KEY_FILE"))).toEqual([]);
  });

  it("uses two pre-created secrets", () => {
    expect(signed.secrets.backup_signing_key).toMatchObject({ external: true, name: "backup_signing_key" });
    expect(signed.secrets.backup_verify_key).toMatchObject({ external: true, name: "backup_verify_key" });
  });

  it.each(BACKUPS)("gives the private key to %s only with BACKUP_SIGNING_KEY_FILE", (name) => {
    const s = signed.services[name] as Service;
    expect(secretsOf(s)).toEqual(["backup_signing_key", "postgres_password"]);
    expect(s.environment.BACKUP_SIGNING_KEY_FILE).toBe("/run/secrets/backup_signing_key");
    expect(s.environment).not.toHaveProperty("BACKUP_VERIFY_KEY_FILE");
  });

  it.each(READERS)("gives the public key to %s with BACKUP_VERIFY_KEY_FILE", (name) => {
    const s = signed.services[name] as Service;
    expect(secretsOf(s)).toEqual(["backup_verify_key", "postgres_password"]);
    expect(s.environment.BACKUP_VERIFY_KEY_FILE).toBe("/run/secrets/backup_verify_key");
    expect(s.environment).not.toHaveProperty("BACKUP_SIGNING_KEY_FILE");
  });

  it("takes the secrets' names from BACKUP_SIGNING_KEY_SECRET and BACKUP_VERIFY_KEY_SECRET (a rotation's new pair)", () => {
    const env: NodeJS.ProcessEnv = { ...process.env, VERSION: "9.8.7", REGISTRY: "reg.test:5000", BACKUP_SIGNING_KEY_SECRET: "backup_signing_key_2", BACKUP_VERIFY_KEY_SECRET: "backup_verify_key_2" };
    const rotated = parse(execFileSync("docker", ["stack", "config", "-c", STACK_FILE, "-c", "stack/docker-compose.signing.yml"], { cwd: ROOT, env, encoding: "utf8" }));
    expect(rotated.secrets.backup_signing_key).toMatchObject({ external: true, name: "backup_signing_key_2" });
    expect(rotated.secrets.backup_verify_key).toMatchObject({ external: true, name: "backup_verify_key_2" });
    expect(secretsOf(rotated.services["wal-receive"] as Service)).toEqual(["backup_signing_key", "postgres_password"]);
  });

  it("keeps every other setting of the task services and leaves postgres without either key", () => {
    for (const t of TASKS) {
      const s = signed.services[t.name] as Service;
      expect(s.environment).toMatchObject({ ...service(t.name).environment });
      expect(s.command).toEqual(t.command);
      expect(s.deploy).toEqual(service(t.name).deploy);
    }
    expect(secretsOf(signed.services.postgres as Service)).toEqual(["postgres_password"]);
  });
});
