// The Makefile and stack/swarm-run-task.sh, run for real against a recording `docker`
// stub first on PATH: each test asserts the docker commands an operator's target issues,
// and how a one-off task's end state becomes make's exit status.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const TASK_IMAGE = "reg.test/pg-swarm-backup-task:1.2.3";
const PG_IMAGE = "reg.test/pg-swarm-backup-postgres:1.2.3";

// Logs one line per call: the VERSION and REGISTRY it saw, then argv, fields split by
// \x1f so arguments with spaces survive. Canned answers come from STUB_* variables.
const STUB = `#!/bin/sh
{
  printf 'VERSION=%s REGISTRY=%s' "\${VERSION-}" "\${REGISTRY-}"
  for a in "$@"; do printf '\\037%s' "$a"; done
  printf '\\n'
} >>"$DOCKER_STUB_LOG"
case "$1 $2" in
  "secret inspect") [ -z "\${STUB_NO_SECRETS-}" ] || exit 1 ;;
  "service create") echo svc0001 ;;
  "service ps") [ -n "\${STUB_NO_TASK-}" ] || echo task0001 ;;
  "service logs") echo "task says: \${STUB_TASK_LOG-hello}" ;;
  "ps -q") [ -z "\${STUB_CONTAINER_ID-}" ] || echo "$STUB_CONTAINER_ID" ;;
  inspect*)
    n=$(cat "$DOCKER_STUB_LOG.polls" 2>/dev/null || echo 0)
    echo $((n + 1)) >"$DOCKER_STUB_LOG.polls"
    if [ "$n" -lt "\${STUB_RUNNING_POLLS:-0}" ]; then echo "running||"; exit 0; fi
    echo "\${STUB_TASK_STATE:-complete}|\${STUB_EXIT_CODE-0}|\${STUB_TASK_ERR-}" ;;
esac
exit 0
`;

let dir: string;
let log: string;

function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // A surrounding make (make test) or operator settings must not leak into these runs.
  for (const k of Object.keys(env)) {
    if (/^(MAKE|MFLAGS|STUB_|VERSION$|REGISTRY$|STACK$|IMAGE$|TZ$|LOCK_MODE$|PGHOST$|PGUSER$|NETWORK$|STORAGEBOX$|BACKUP_DIR$|SIGNING|ENCRYPTION$|VERIFY_KEY_OUT$|S3_|AGE_|BACKUP_\w+_SECRET$|TRUST_UNSIGNED$|EXTRA_STACK_FILES$|DEPLOY_ARGS$|AT$|DRY_RUN$|SOURCE$|PG_UID$)/.test(k)) {
      delete env[k];
    }
  }
  return { ...env, PATH: `${dir}:${process.env.PATH}`, DOCKER_STUB_LOG: log, POLL_SECONDS: "0", ...extra };
}

function run(cmd: string, args: string[], extra: Record<string, string> = {}) {
  const r = spawnSync(cmd, args, { cwd: ROOT, env: baseEnv(extra), encoding: "utf8", timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const make = (args: string[], extra: Record<string, string> = {}) =>
  run("make", ["--no-print-directory", "VERSION=1.2.3", "REGISTRY=reg.test", ...args], extra);

interface Call {
  env: string;
  argv: string[];
}

function calls(): Call[] {
  let text: string;
  try {
    text = readFileSync(log, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const [env, ...argv] = l.split("\x1f");
      return { env: env!, argv };
    });
}

const commands = () => calls().map((c) => c.argv.join(" "));

/** The value after each occurrence of a flag, e.g. all `-e` values. */
function flagValues(argv: string[], flag: string): string[] {
  return argv.flatMap((a, i) => (a === flag && i + 1 < argv.length ? [argv[i + 1]!] : []));
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "pgsb-docker-stub-"));
  writeFileSync(join(dir, "docker"), STUB);
  chmodSync(join(dir, "docker"), 0o755);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeEach(() => {
  log = join(dir, `calls-${Math.random().toString(36).slice(2)}.log`);
});

describe("make: images and stack", () => {
  it("help is the default target and lists every target", () => {
    const r = make([]);
    expect(r.status).toBe(0);
    for (const t of ["build", "push", "deploy", "update", "remove", "clean", "ps", "logs", "shell", "backup-full",
      "backup-diff", "backup-incr", "backup-base", "backup-list", "verify", "backup-restore", "test", "test-pg17", "e2e", "lint", "demo", "bench", "typecheck"]) {
      expect(r.stdout).toMatch(new RegExp(`^\\s+${t}\\s+\\S`, "m"));
    }
    expect(calls()).toEqual([]);
  });

  it("build builds both images with the version, tagged VERSION and latest", () => {
    expect(make(["build"]).status).toBe(0);
    expect(commands()).toEqual([
      `build -f Dockerfile.postgres --build-arg VERSION=1.2.3 -t ${PG_IMAGE} -t reg.test/pg-swarm-backup-postgres:latest .`,
      `build -f Dockerfile.task --build-arg VERSION=1.2.3 -t ${TASK_IMAGE} -t reg.test/pg-swarm-backup-task:latest .`,
    ]);
  });

  it("push pushes both tags of both images", () => {
    expect(make(["push"]).status).toBe(0);
    expect(commands()).toEqual([
      `push ${PG_IMAGE}`,
      "push reg.test/pg-swarm-backup-postgres:latest",
      `push ${TASK_IMAGE}`,
      "push reg.test/pg-swarm-backup-task:latest",
    ]);
  });

  it("deploy deploys signed by default: the key secrets exist, the signing file layered, VERSION and REGISTRY in docker's environment", () => {
    const r = make(["deploy"]);
    expect(r.status, r.stderr).toBe(0);
    expect(commands()).toEqual(["secret inspect backup_signing_key", "secret inspect backup_verify_key", expect.stringMatching(/^stack deploy/)]);
    expect(calls()[2]).toEqual({
      env: "VERSION=1.2.3 REGISTRY=reg.test",
      argv: ["stack", "deploy", "-c", "stack/docker-compose.swarm.yml", "-c", "stack/docker-compose.signing.yml", "--with-registry-auth", "pgsb"],
    });
    expect(r.stderr).toContain("deploying signed");
  });

  it("the first deploy makes the Ed25519 pair, creates both secrets and says where the private key's offline copy must go", () => {
    const out = mkdtempSync(join(tmpdir(), "pgsb-keys-"));
    try {
      const priv = join(out, "sign.pem");
      const pub = join(out, "verify.pem");
      const r = make(["deploy"], { STUB_NO_SECRETS: "1", SIGNING_KEY_OUT: priv, VERIFY_KEY_OUT: pub });
      expect(r.status, r.stderr).toBe(0);
      expect(commands().filter((c) => c.startsWith("secret create"))).toEqual([`secret create backup_signing_key ${priv}`, `secret create backup_verify_key ${pub}`]);
      expect(commands().at(-1)).toMatch(/^stack deploy -c stack\/docker-compose.swarm.yml -c stack\/docker-compose.signing.yml /);
      expect(statSync(priv).mode & 0o777).toBe(0o600);
      expect(readFileSync(priv, "utf8")).toMatch(/^-----BEGIN PRIVATE KEY-----/);
      expect(execFileSync("openssl", ["pkey", "-in", priv, "-noout", "-text"], { encoding: "utf8" })).toMatch(/ED25519 Private-Key/);
      expect(readFileSync(pub, "utf8")).toBe(execFileSync("openssl", ["pkey", "-in", priv, "-pubout"], { encoding: "utf8" }));
      expect(r.stderr).toContain(`The private key's only copy outside the swarm is ${priv} (mode 0600).`);
      expect(r.stderr).toMatch(/Put it offline NOW.*password manager.*shred -u/s);
      // A second first deploy does not overwrite that copy.
      const again = make(["deploy"], { STUB_NO_SECRETS: "1", SIGNING_KEY_OUT: priv, VERIFY_KEY_OUT: pub });
      expect(again.status).not.toBe(0);
      expect(again.stderr).toContain(`${priv} exists; not overwriting it`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it("deploy SIGNING=0 deploys the stack file alone and says what that gives up", () => {
    const r = make(["deploy", "SIGNING=0"]);
    expect(r.status).toBe(0);
    expect(commands()).toEqual(["stack deploy -c stack/docker-compose.swarm.yml --with-registry-auth pgsb"]);
    expect(r.stderr).toMatch(/SIGNING=0: backups are neither signed nor checked.*plant a backup whose SQL runs as the superuser/);
  });

  it("deploy ENCRYPTION=1 layers the encryption file too, after the signing file; without signing it is refused", () => {
    expect(make(["deploy", "ENCRYPTION=1"]).status).toBe(0);
    expect(calls().at(-1)?.argv).toEqual(["stack", "deploy", "-c", "stack/docker-compose.swarm.yml", "-c", "stack/docker-compose.signing.yml", "-c", "stack/docker-compose.encryption.yml", "--with-registry-auth", "pgsb"]);
    log = join(dir, "refused.log");
    const r = make(["deploy", "SIGNING=0", "ENCRYPTION=1"]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("ENCRYPTION=1 with SIGNING=0 is refused");
    expect(calls()).toEqual([]);
  });

  it("deploy with S3_BUCKET layers the S3 file; EXTRA_STACK_FILES come last and DEPLOY_ARGS before the stack's name", () => {
    const r = make(["deploy", "S3_BUCKET=pg-backups", "EXTRA_STACK_FILES=site.yml more.yml", "DEPLOY_ARGS=--resolve-image never"]);
    expect(r.status, r.stderr).toBe(0);
    const deploy = calls().at(-1)!;
    expect(deploy.argv).toEqual([
      "stack", "deploy", "-c", "stack/docker-compose.swarm.yml", "-c", "stack/docker-compose.signing.yml", "-c", "stack/docker-compose.s3.yml",
      "-c", "site.yml", "-c", "more.yml", "--with-registry-auth", "--resolve-image", "never", "pgsb",
    ]);
    // docker stack deploy interpolates the S3 file from its environment.
    expect(deploy.env).toBe("VERSION=1.2.3 REGISTRY=reg.test");
  });

  it("deploy with the key pair's secrets renamed (a rotation) checks and makes those", () => {
    const out = mkdtempSync(join(tmpdir(), "pgsb-keys-"));
    try {
      const r = make(["deploy", "BACKUP_SIGNING_KEY_SECRET=backup_signing_key_2", "BACKUP_VERIFY_KEY_SECRET=backup_verify_key_2"], {
        STUB_NO_SECRETS: "1", SIGNING_KEY_OUT: join(out, "s.pem"), VERIFY_KEY_OUT: join(out, "v.pem"),
      });
      expect(r.status, r.stderr).toBe(0);
      expect(commands().filter((c) => c.startsWith("secret"))).toEqual([
        "secret inspect backup_signing_key_2", "secret inspect backup_verify_key_2",
        `secret create backup_signing_key_2 ${join(out, "s.pem")}`, `secret create backup_verify_key_2 ${join(out, "v.pem")}`,
      ]);
      expect(r.stderr).toContain("the Swarm secrets backup_signing_key_2 (private) and\n  backup_verify_key_2 (public)");
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it("update builds, pushes, then points postgres and every task service at the new images", () => {
    expect(make(["update"]).status).toBe(0);
    const updates = commands().filter((c) => c.startsWith("service update"));
    expect(updates).toEqual([
      `service update --with-registry-auth --image ${PG_IMAGE} pgsb_postgres`,
      ...["backup-full", "backup-differential", "backup-incremental", "backup-base", "cleanup", "verify", "auto-restore", "wal-receive"].map(
        (s) => `service update --with-registry-auth --image ${TASK_IMAGE} pgsb_${s}`,
      ),
    ]);
    expect(commands().findIndex((c) => c.startsWith("push"))).toBeGreaterThan(
      commands().findLastIndex((c) => c.startsWith("build")),
    );
  });

  it.each([
    [["remove"], "stack rm pgsb"],
    [["remove", "STACK=db"], "stack rm db"],
    [["ps"], "stack ps pgsb"],
    [["logs"], "service logs -f pgsb_postgres"],
    [["logs", "SERVICE=backup-full"], "service logs -f pgsb_backup-full"],
  ])("make %j runs docker %s", (args, expected) => {
    expect(make(args).status).toBe(0);
    expect(commands()).toEqual([expected]);
  });

  it("shell execs into the local postgres container, or says where to run it", () => {
    expect(make(["shell"], { STUB_CONTAINER_ID: "c0ffee" }).status).toBe(0);
    expect(commands()).toEqual(["ps -q -f name=pgsb_postgres", "exec -it c0ffee sh"]);

    const r = make(["shell"]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("database=true");
  });

  it("clean removes only this project's images and build outputs (dry run)", () => {
    const r = make(["-n", "clean"]);
    expect(r.stdout).toContain(`docker image rm ${PG_IMAGE} reg.test/pg-swarm-backup-postgres:latest`);
    expect(r.stdout).toContain("rm -rf dist node_modules");
  });

  it("test-pg17 runs setup, then the given integration files in the trixie image (scripts/test-pg17.sh)", () => {
    expect(make(["-n", "test-pg17"]).stdout.trim().split("\n")).toEqual(["bash scripts/setup.sh", "bash scripts/test-pg17.sh"]);
    expect(make(["-n", "test-pg17", "TEST_PG17_FILES=test/integration/verify.test.ts"]).stdout.trim().split("\n").at(-1)).toBe("bash scripts/test-pg17.sh test/integration/verify.test.ts");
  });

  it("the local targets run setup first and then the npm scripts", () => {
    const r = make(["-n", "test", "lint", "demo", "bench", "typecheck", "BENCH_ARGS=--quick"]);
    expect(r.stdout.trim().split("\n")).toEqual([
      "bash scripts/setup.sh",
      "npm test",
      "bash scripts/setup.sh",
      "npm run lint",
      "find scripts stack test/e2e .ci -type f -name '*.sh' -exec shellcheck {} +",
      "bash scripts/setup.sh",
      "bash scripts/demo.sh",
      "bash scripts/setup.sh",
      "npm run bench -- --quick",
      "npm run typecheck",
    ]);
  });
});

describe("make: one-off tasks through stack/swarm-run-task.sh", () => {
  it("backup-full creates a replicated job, waits for it, prints its logs, removes it, exits 0", () => {
    const r = make(["backup-full"], { STUB_RUNNING_POLLS: "2", STUB_TASK_LOG: "full backup written" });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("task says: full backup written");

    const all = calls().map((c) => c.argv);
    const create = all[0]!;
    const name = flagValues(create, "--name")[0]!;
    expect(name).toMatch(/^pgsb-backup-full-\d{14}$/);
    expect(create.slice(0, 2)).toEqual(["service", "create"]);
    expect(flagValues(create, "--mode")).toEqual(["replicated-job"]);
    expect(create).toContain("--detach");
    expect(flagValues(create, "--network")).toEqual(["backend-net"]);
    // Signed by default: a backup holds the private key.
    expect(flagValues(create, "--secret")).toEqual(["postgres_password", "source=backup_signing_key,target=backup_signing_key"]);
    expect(flagValues(create, "--mount")).toEqual([
      "type=bind,source=/mnt/storagebox,target=/storagebox,bind-propagation=rslave",
    ]);
    expect(flagValues(create, "--constraint")).toEqual(["node.labels.database==true"]);
    expect(flagValues(create, "--restart-condition")).toEqual(["none"]);
    expect(flagValues(create, "--sysctl")).toEqual(["net.ipv4.tcp_keepalive_intvl=5", "net.ipv4.tcp_keepalive_probes=3"]);
    expect(flagValues(create, "-e")).toEqual(
      expect.arrayContaining([
        "PGHOST=postgres",
        "PGUSER=postgres",
        "POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password",
        "BACKUP_DIR=/storagebox/backups/postgresql",
        "TZ=Europe/Berlin",
        "LOCK_MODE=wait",
      ]),
    );
    expect(create.slice(-3)).toEqual([TASK_IMAGE, "backup", "full"]);

    const rest = all.slice(1).map((a) => a.join(" "));
    expect(rest.filter((c) => c.startsWith("inspect"))).toHaveLength(3);
    expect(rest.slice(-2)).toEqual([`service logs --raw ${name}`, `service rm ${name}`]);
  });

  it("a task that fails with exit code 3 fails make, and the runner exits 3; the service is removed", () => {
    const failed = { STUB_TASK_STATE: "failed", STUB_EXIT_CODE: "3", STUB_TASK_ERR: "task: non-zero exit (3)" };
    const r = make(["backup-full"], failed);
    expect(r.status).not.toBe(0);
    expect(r.stdout).toContain("task says:");
    expect(commands().at(-1)).toMatch(/^service rm pgsb-backup-full-\d{14}$/);

    log = join(dir, "direct.log");
    const direct = run("bash", ["stack/swarm-run-task.sh", "backup-full", "--", "backup", "full"], failed);
    expect(direct.status).toBe(3);
    expect(direct.stderr).toContain("exit code 3");
    expect(commands().at(-1)).toMatch(/^service rm pgsb-backup-full-\d{14}$/);
  });

  it.each([
    [["backup-diff"], ["backup", "differential"]],
    [["backup-incr"], ["backup", "incremental"]],
    [["backup-base"], ["backup", "base"]],
    [["backup-list"], ["list"]],
    [["verify"], ["verify", "--restore"]],
    [["backup-restore", "ARGS=restore-database x.sql.bz2 app"], ["restore-database", "x.sql.bz2", "app"]],
  ])("make %j runs the task image with %j", (args, taskArgs) => {
    expect(make(args).status).toBe(0);
    const create = calls()[0]!.argv;
    expect(create.slice(0, 2)).toEqual(["service", "create"]);
    expect(create.slice(-1 - taskArgs.length)).toEqual([TASK_IMAGE, ...taskArgs]);
    expect(commands().at(-1)).toMatch(/^service rm pgsb-/);
  });

  it("backup-base compresses with zstd, as the backup-base service does; the logical backups keep the default", () => {
    expect(make(["backup-base"]).status).toBe(0);
    expect(flagValues(calls()[0]!.argv, "-e")).toContain("BACKUP_COMPRESSION=zstd");
    log = join(dir, "full.log");
    expect(make(["backup-full"]).status).toBe(0);
    expect(flagValues(calls()[0]!.argv, "-e").some((e) => e.startsWith("BACKUP_COMPRESSION="))).toBe(false);
  });

  it("backup-restore without ARGS prints usage and starts nothing", () => {
    const r = make(["backup-restore"]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("restore-database FILE DB");
    expect(calls()).toEqual([]);
  });
});

describe("stack/swarm-run-task.sh", () => {
  const runner = (extra: Record<string, string>, args = ["verify", "--", "verify"]) =>
    run("bash", ["stack/swarm-run-task.sh", ...args], { IMAGE: TASK_IMAGE, ...extra });

  it("maps a task Swarm rejected to 125 and shows why", () => {
    const r = runner({ STUB_TASK_STATE: "rejected", STUB_EXIT_CODE: "", STUB_TASK_ERR: "No such image: x" });
    expect(r.status).toBe(125);
    expect(r.stderr).toContain("No such image: x");
    expect(commands().at(-1)).toMatch(/^service rm pgsb-verify-/);
  });

  it("exits 1 when a task ended without an exit code", () => {
    expect(runner({ STUB_TASK_STATE: "shutdown", STUB_EXIT_CODE: "" }).status).toBe(1);
  });

  it("gives up after TASK_TIMEOUT_SECONDS with 124 and removes the service", () => {
    const r = runner({ STUB_RUNNING_POLLS: "1000000", TASK_TIMEOUT_SECONDS: "0" });
    expect(r.status).toBe(124);
    expect(r.stderr).toContain("TASK_TIMEOUT_SECONDS");
    expect(commands().at(-1)).toMatch(/^service rm pgsb-verify-/);
  });

  it("passes the operator's image, directory and lock mode through", () => {
    runner({ IMAGE: "other/img:7", STORAGEBOX: "/srv/box", LOCK_MODE: "skip" });
    const create = calls()[0]!.argv;
    expect(create).toContain("other/img:7");
    expect(flagValues(create, "--mount")[0]).toContain("source=/srv/box,");
    expect(flagValues(create, "-e")).toContain("LOCK_MODE=skip");
  });

  it.each([
    [["backup-full", "--", "backup", "full"], ["--config", "source=age_recipients,target=/run/configs/age_recipients"], "AGE_RECIPIENTS_FILE=/run/configs/age_recipients"],
    [["restore", "--", "restore-latest"], ["--secret", "source=age_identity,target=age_identity"], "AGE_IDENTITY_FILE=/run/secrets/age_identity"],
    [["verify", "--", "verify"], ["--secret", "source=age_identity,target=age_identity"], "AGE_IDENTITY_FILE=/run/secrets/age_identity"],
  ])("ENCRYPTION=1: %j gets %j and %s, and nothing of the other side", (args, flag, env) => {
    runner({ ENCRYPTION: "1" }, args);
    const create = calls()[0]!.argv;
    expect(flagValues(create, flag[0] as string)).toContain(flag[1]);
    expect(flagValues(create, "-e")).toContain(env);
    const other = env.startsWith("AGE_IDENTITY") ? "AGE_RECIPIENTS_FILE" : "AGE_IDENTITY_FILE";
    expect(flagValues(create, "-e").some((e) => e.startsWith(other))).toBe(false);
  });

  it.each([
    [{}, ["backup", "--", "backup", "full"], ["source=backup_signing_key,target=backup_signing_key"], "BACKUP_SIGNING_KEY_FILE=/run/secrets/backup_signing_key"],
    [{}, ["restore", "--", "restore-latest"], ["source=backup_verify_key,target=backup_verify_key"], "BACKUP_VERIFY_KEY_FILE=/run/secrets/backup_verify_key"],
    // After a rotation (docs/runbook.md): the new secrets, mounted where the tasks look.
    [{ BACKUP_SIGNING_KEY_SECRET: "backup_signing_key_2" }, ["backup", "--", "backup", "full"], ["source=backup_signing_key_2,target=backup_signing_key"], "BACKUP_SIGNING_KEY_FILE=/run/secrets/backup_signing_key"],
    [{ BACKUP_VERIFY_KEY_SECRET: "backup_verify_key_2" }, ["restore", "--", "restore-latest"], ["source=backup_verify_key_2,target=backup_verify_key"], "BACKUP_VERIFY_KEY_FILE=/run/secrets/backup_verify_key"],
    [{ SIGNING: "0" }, ["restore", "--", "restore-full", "old.sql.bz2"], [], undefined],
    [{ SIGNING: "0" }, ["backup", "--", "backup", "full"], [], undefined],
  ])("signed by default: with %j, %j gets the secrets %j", (env, args, secrets, variable) => {
    runner(env, args);
    const create = calls()[0]!.argv;
    expect(flagValues(create, "--secret")).toEqual(["postgres_password", ...secrets]);
    expect(flagValues(create, "-e").filter((e) => e.includes("_KEY_FILE="))).toEqual(variable === undefined ? [] : [variable]);
  });

  it("ENCRYPTION=1 after a rotation: the renamed recipients config and identity secret, mounted where the tasks look", () => {
    runner({ ENCRYPTION: "1", AGE_RECIPIENTS_CONFIG: "age_recipients_2" }, ["backup-full", "--", "backup", "full"]);
    expect(flagValues(calls()[0]!.argv, "--config")).toEqual(["source=age_recipients_2,target=/run/configs/age_recipients"]);
    log = join(dir, "identity.log");
    runner({ ENCRYPTION: "1", AGE_IDENTITY_SECRET: "age_identity_2" }, ["restore", "--", "restore-latest"]);
    expect(flagValues(calls()[0]!.argv, "--secret")).toContain("source=age_identity_2,target=age_identity");
  });

  it("S3_BUCKET set: the task gets the mirror's settings that are set and the credentials as secrets, never their values", () => {
    runner({ S3_BUCKET: "pg-backups", S3_ENDPOINT: "http://10.0.0.5:9000", S3_PREFIX: "prod", S3_REGION: "" }, ["restore", "--", "restore-latest"]);
    const create = calls()[0]!.argv;
    expect(flagValues(create, "-e").filter((e) => /^(S3_|AWS_)/.test(e))).toEqual([
      "S3_BUCKET=pg-backups",
      "AWS_ACCESS_KEY_ID_FILE=/run/secrets/s3_access_key_id",
      "AWS_SECRET_ACCESS_KEY_FILE=/run/secrets/s3_secret_access_key",
      "S3_PREFIX=prod",
      "S3_ENDPOINT=http://10.0.0.5:9000",
    ]);
    expect(flagValues(create, "--secret")).toEqual(expect.arrayContaining(["source=s3_access_key_id,target=s3_access_key_id", "source=s3_secret_access_key,target=s3_secret_access_key"]));
    log = join(dir, "s3-off.log");
    runner({}, ["restore", "--", "restore-latest"]);
    expect(flagValues(calls()[0]!.argv, "-e").filter((e) => /^(S3_|AWS_)/.test(e))).toEqual([]);
  });

  it("ENCRYPTION=0 is off, like an unset ENCRYPTION", () => {
    runner({ ENCRYPTION: "0" }, ["backup-full", "--", "backup", "full"]);
    expect(flagValues(calls()[0]!.argv, "-e").filter((e) => e.startsWith("AGE_"))).toEqual([]);
  });

  it("ENCRYPTION=1 gives cleanup neither key: it works on the encrypted files as they are", () => {
    runner({ ENCRYPTION: "1" }, ["cleanup", "--", "cleanup"]);
    expect(flagValues(calls()[0]!.argv, "-e").filter((e) => e.startsWith("AGE_"))).toEqual([]);
  });

  it.each([[[]], [["Bad_Name", "--", "list"]], [["list", "--"]]])("refuses %j with usage and exit 2", (args) => {
    const r = runner({}, args);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("usage:");
    expect(calls()).toEqual([]);
  });

  it("removes the service when interrupted with Ctrl-C", async () => {
    const child = spawn("bash", ["stack/swarm-run-task.sh", "verify", "--", "verify"], {
      cwd: ROOT,
      env: baseEnv({ IMAGE: TASK_IMAGE, STUB_RUNNING_POLLS: "1000000", POLL_SECONDS: "0.05" }),
      stdio: "ignore",
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const deadline = Date.now() + 10_000;
    while (!commands().some((c) => c.startsWith("inspect")) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill("SIGINT");
    expect(await exited).toBe(130);
    expect(commands().at(-1)).toMatch(/^service rm pgsb-verify-/);
  });
});

describe("make restore-pitr (stack/swarm-restore-pitr.sh)", () => {
  /** The restore-pitr job's task arguments: what follows the task image in its service create. */
  const restoreJob = () => {
    const create = calls().find((c) => c.argv[0] === "service" && c.argv[1] === "create" && flagValues(c.argv, "--name")[0]!.startsWith("pgsb-restore-pitr-"))!.argv;
    return { create, args: create.slice(create.indexOf(TASK_IMAGE) + 1) };
  };

  it("stops postgres, runs restore-pitr on its data volume as root, starts postgres and waits for the promotion", () => {
    const r = make(["restore-pitr", "AT=2024-01-10T12:00:00Z"]);
    expect(r.status, r.stderr).toBe(0);
    const scales = commands().filter((c) => c.startsWith("service scale"));
    expect(scales).toEqual(["service scale --detach=false pgsb_postgres=0", "service scale --detach=false pgsb_postgres=1"]);
    const { create, args } = restoreJob();
    expect(args).toEqual(["restore-pitr", "--pgdata", "/var/lib/postgresql/data", "--move-aside", "--owner", "70:70", "--at", "2024-01-10T12:00:00Z"]);
    expect(flagValues(create, "--mount")).toContain("type=volume,source=pgsb_postgres-data,target=/var/lib/postgresql/data");
    expect(flagValues(create, "--user")).toEqual(["0:0"]);
    // Signed by default: the job checks base backup and WAL with the public key.
    expect(flagValues(create, "--secret")).toContain("source=backup_verify_key,target=backup_verify_key");
    expect(commands().filter((c) => / pgsb-pitr-wait-\d+ /.test(` ${c} `) && c.startsWith("service create"))).toHaveLength(1);
  });

  it("ENCRYPTION=1 gives the job the identity; DRY_RUN=1 only plans and never stops postgres", () => {
    expect(make(["restore-pitr", "ENCRYPTION=1", "DRY_RUN=1"]).status).toBe(0);
    const { create, args } = restoreJob();
    expect(args.slice(-1)).toEqual(["--dry-run"]);
    expect(flagValues(create, "--secret")).toContain("source=age_identity,target=age_identity");
    expect(commands().filter((c) => c.startsWith("service scale"))).toEqual([]);
  });

  it("SIGNING=0 TRUST_UNSIGNED=1 passes --trust-unsigned and says what it restores", () => {
    const r = make(["restore-pitr", "SIGNING=0", "TRUST_UNSIGNED=1"]);
    expect(r.status, r.stderr).toBe(0);
    const { create, args } = restoreJob();
    expect(args).toContain("--trust-unsigned");
    expect(flagValues(create, "--secret")).toEqual(["postgres_password"]);
    expect(r.stderr).toContain("TRUST_UNSIGNED=1: an unsigned base backup's settings that run commands or load code are restored as they are");
  });

  it.each([
    [["TRUST_UNSIGNED=1"], "TRUST_UNSIGNED=1 needs SIGNING=0"],
    [["SIGNING=0", "TRUST_UNSIGNED=yes"], "TRUST_UNSIGNED=yes is not 0 or 1"],
  ])("%j is refused with exit 2 before postgres is stopped", (args, message) => {
    const r = make(["restore-pitr", ...args]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(message);
    expect(r.stderr).toContain("nothing was stopped");
    expect(calls()).toEqual([]);
    log = join(dir, "direct-pitr.log");
    const direct = run("bash", ["stack/swarm-restore-pitr.sh"], { IMAGE: TASK_IMAGE, ...Object.fromEntries(args.map((a) => a.split("=") as [string, string])) });
    expect(direct.status).toBe(2);
  });

  it("says after the promotion where the old data directory is, and that base backups fail until restore-pitr-clean", () => {
    const r = make(["restore-pitr"]);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("kept in pgsb_postgres-data as .pgsb-moved-<time>/");
    expect(r.stderr).toContain("make restore-pitr-clean (base backups fail while it is there)");
  });

  // The moved-aside folder sits inside PGDATA (the volume's root), which pg_basebackup reads whole.
  it("restore-pitr-clean removes the moved-aside folders with a root job of the postgres image on the data volume, postgres left running", () => {
    const r = make(["restore-pitr-clean"]);
    expect(r.status, r.stderr).toBe(0);
    expect(commands().filter((c) => c.startsWith("service scale"))).toEqual([]);
    const create = calls()[0]!.argv;
    expect(flagValues(create, "--name")[0]).toMatch(/^pgsb-restore-pitr-clean-\d{14}$/);
    expect(flagValues(create, "--mount")).toContain("type=volume,source=pgsb_postgres-data,target=/var/lib/postgresql/data");
    expect(flagValues(create, "--user")).toEqual(["0:0"]);
    const args = create.slice(create.indexOf(PG_IMAGE) + 1);
    expect(args[0]).toBe("sh");
    expect(args[2]).toContain('rm -rf "$d"');
    expect(args[3]).toBe("/var/lib/postgresql/data");
    // The script itself, run on a folder like the volume: only .pgsb-moved-* goes.
    const vol = mkdtempSync(join(tmpdir(), "pgsb-vol-"));
    try {
      for (const d of [".pgsb-moved-20240110_120000", "base", "pg_wal"]) execFileSync("mkdir", ["-p", join(vol, d, "x")]);
      const out = execFileSync("sh", ["-c", args[2]!, vol], { encoding: "utf8" });
      expect(out).toContain(`removing ${vol}/.pgsb-moved-20240110_120000`);
      expect(readdirSync(vol).sort()).toEqual(["base", "pg_wal"]);
      expect(execFileSync("sh", ["-c", args[2]!, vol], { encoding: "utf8" })).toContain("nothing to remove");
    } finally {
      rmSync(vol, { recursive: true, force: true });
    }
  });

  it("without TRUST_UNSIGNED no --trust-unsigned; SOURCE=s3 becomes --source s3 with the mirror's settings", () => {
    expect(make(["restore-pitr", "SOURCE=s3", "S3_BUCKET=pg-backups"]).status).toBe(0);
    const { create, args } = restoreJob();
    expect(args).not.toContain("--trust-unsigned");
    expect(args.slice(-2)).toEqual(["--source", "s3"]);
    expect(flagValues(create, "-e")).toContain("S3_BUCKET=pg-backups");
  });
});
