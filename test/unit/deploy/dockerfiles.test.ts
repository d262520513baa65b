// Static checks of the two images (no Docker engine needed) and shellcheck over every
// shell script in the repository.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));

interface Instruction {
  op: string;
  args: string;
}

/** Instructions in order, continuation lines joined and comments dropped. */
function instructions(file: string): Instruction[] {
  const text = readFileSync(join(ROOT, file), "utf8").replace(/\\\n/g, " ");
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/);
      return { op: op!.toUpperCase(), args: rest.join(" ") };
    });
}

/** Instructions of the last stage (what the shipped image is made of). */
function finalStage(all: Instruction[]): Instruction[] {
  const lastFrom = all.map((i) => i.op).lastIndexOf("FROM");
  return all.slice(lastFrom);
}

function argDefault(all: Instruction[], name: string): string {
  const arg = all.find((i) => i.op === "ARG" && i.args.startsWith(`${name}=`));
  if (arg === undefined) throw new Error(`no ARG ${name}=... default`);
  return arg.args.slice(name.length + 1);
}

const postgres = instructions("Dockerfile.postgres");
const task = instructions("Dockerfile.task");

/** The final stage's package installation. */
function aptInstall(): string {
  return finalStage(task).find((i) => i.op === "RUN" && i.args.includes("apt-get install"))!.args;
}

describe("base images", () => {
  it.each([
    ["Dockerfile.postgres", postgres, "POSTGRES_IMAGE"],
    ["Dockerfile.task", task, "NODE_IMAGE"],
  ])("%s takes its base from a pinned ARG %s, never latest", (_file, all, arg) => {
    const image = argDefault(all, arg);
    expect(image).toMatch(/^[\w./-]+:[\w.-]+$/);
    expect(image).not.toMatch(/:latest$/);
    for (const from of all.filter((i) => i.op === "FROM")) {
      expect(from.args).toMatch(new RegExp(`^\\$\\{${arg}\\}`));
    }
  });

  it("postgres is a 16 Alpine image and the task image's client tools are the same major", () => {
    const image = argDefault(postgres, "POSTGRES_IMAGE");
    const major = /^postgres:(\d+)[.-]/.exec(image)?.[1];
    expect(major).toBe("16");
    expect(image).toContain("alpine");
    expect(argDefault(task, "PG_MAJOR")).toBe(major);
    const apt = aptInstall();
    expect(apt).toContain("postgresql-client-${PG_MAJOR}");
    // Server binaries for `verify --restore`, which runs initdb in a temp dir.
    expect(apt).toMatch(/postgresql-\$\{PG_MAJOR\}["\s]/);
  });

  // Alpine's stable releases carry no parallel bzip2 (lbzip2 is in its testing repository only),
  // so the task image is Debian, where lbzip2 is in main; PostgreSQL 16 comes from PostgreSQL's
  // own apt repository unless PG_APT=debian (the e2e's trixie base, PG_MAJOR=17).
  it("the task image is a Debian Node LTS with lbzip2, PostgreSQL from apt.postgresql.org by default", () => {
    expect(argDefault(task, "NODE_IMAGE")).toMatch(/^node:22-(trixie|bookworm)-slim$/);
    expect(argDefault(task, "PG_APT")).toBe("pgdg");
    const apt = aptInstall();
    expect(apt).toMatch(/\blbzip2\b/);
    expect(apt).toMatch(/\bage\b/);
    expect(apt).toContain("/usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y");
    expect(apt).toContain('if [ "${PG_APT}" = pgdg ]');
    const env = finalStage(task).filter((i) => i.op === "ENV").map((i) => i.args).join(" ");
    expect(env).toContain('PG_BINDIR="/usr/lib/postgresql/${PG_MAJOR}/bin"');
  });

  // The e2e (test/e2e/steps.sh) builds these very files; only build args may differ.
  it("every build arg the e2e passes is declared by the Dockerfiles", () => {
    const steps = readFileSync(join(ROOT, "test/e2e/steps.sh"), "utf8");
    const passed = [...steps.matchAll(/--build-arg (\w+)=/g)].map((m) => m[1]!);
    expect(passed.sort()).toEqual(["NODE_IMAGE", "PG_APT", "PG_MAJOR", "POSTGRES_IMAGE"]);
    const declared = [...postgres, ...task].filter((i) => i.op === "ARG").map((i) => i.args.split("=")[0]);
    for (const arg of passed) expect(declared).toContain(arg);
  });
});

describe("Dockerfile.postgres", () => {
  it("ships the write-gate hook into the entrypoint's init directory", () => {
    expect(postgres.some((i) => i.op === "COPY" && /stack\/initdb\/? \/docker-entrypoint-initdb\.d\/$/.test(i.args))).toBe(true);
  });

  it("reads its config from the Swarm config mount and the password from the secret", () => {
    expect(finalStage(postgres).filter((i) => i.op === "CMD").at(-1)!.args).toBe(
      '["postgres", "-c", "config_file=/etc/postgresql/postgresql.conf"]',
    );
    const env = postgres.filter((i) => i.op === "ENV").map((i) => i.args).join(" ");
    expect(env).toContain("TZ=Europe/Berlin");
    expect(env).toContain("POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password");
  });

  it("is healthy only when psql can run SELECT 1 (not pg_isready)", () => {
    const hc = postgres.filter((i) => i.op === "HEALTHCHECK");
    expect(hc).toHaveLength(1);
    for (const opt of ["--interval=30s", "--timeout=5s", "--retries=3", "--start-period=60s"]) {
      expect(hc[0]!.args).toContain(opt);
    }
    expect(hc[0]!.args).toMatch(/CMD psql .*-c 'SELECT 1'/);
    expect(hc[0]!.args).not.toContain("pg_isready");
  });

  it("does not start anything but postgres", () => {
    expect(postgres.some((i) => i.op === "ENTRYPOINT")).toBe(false);
  });
});

describe("Dockerfile.task", () => {
  const runtime = finalStage(task);

  it("runs as a non-root user", () => {
    const user = runtime.filter((i) => i.op === "USER").at(-1)?.args;
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
  });

  it("runs the CLI under tini, showing help by default", () => {
    expect(runtime.find((i) => i.op === "ENTRYPOINT")?.args).toBe('["/usr/bin/tini", "--", "node", "/app/dist/tasks/cli.js"]');
    expect(runtime.find((i) => i.op === "CMD")?.args).toBe('["--help"]');
    expect(aptInstall()).toMatch(/\btini\b/);
  });

  it("fills a V8 compile cache at build time, as root before USER, by loading every task module", () => {
    const env = runtime.findIndex((i) => i.op === "ENV" && i.args.startsWith("NODE_COMPILE_CACHE="));
    const warm = runtime.findIndex((i) => i.op === "RUN" && i.args.includes("/app/dist/tasks/"));
    const copy = runtime.findIndex((i) => i.op === "COPY" && i.args.includes("/app/dist"));
    const user = runtime.findIndex((i) => i.op === "USER");
    expect(env).toBeGreaterThan(-1);
    expect(copy < warm && env < warm && warm < user).toBe(true);
    // The same command against this checkout's build: every task module loads without running anything.
    const command = (runtime[warm] as Instruction).args.replace(/\/app\//g, ROOT);
    expect(() => execFileSync("sh", ["-c", command], { stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 })).not.toThrow();
  });

  // A new named volume takes the owner and mode of the image's folder it is mounted on: without
  // the folder, the stack's wal-spool volume would be root's and wal-receive (uid 1000) could not write it.
  it("makes the stack's WAL_SPOOL_DIR a private folder of the backup user, for the wal-spool volume", () => {
    const spool = /^\s+WAL_SPOOL_DIR: (\S+)$/m.exec(readFileSync(join(ROOT, "stack/docker-compose.swarm.yml"), "utf8"))?.[1];
    expect(spool).toBe("/var/lib/pgsb-wal-spool");
    const run = runtime.find((i) => i.op === "RUN" && i.args.includes("useradd"))!.args;
    expect(run).toContain(`install -d -o backup -g backup -m 0700 ${spool}`);
  });

  it("has no HEALTHCHECK: its tasks are one-shot", () => {
    expect(task.some((i) => i.op === "HEALTHCHECK")).toBe(false);
  });

  it("copies only the built app and its runtime files into the final image", () => {
    const sources = runtime
      .filter((i) => i.op === "COPY")
      .flatMap((i) => i.args.split(" ").filter((a) => !a.startsWith("--")).slice(0, -1));
    expect(sources.sort()).toEqual(["/app/dist", "/app/node_modules", "/app/package.json", "LICENSE", "VERSION"]);
  });
});

describe(".dockerignore", () => {
  const allowed = readFileSync(join(ROOT, ".dockerignore"), "utf8")
    .split("\n")
    .filter((l) => l.startsWith("!"))
    .map((l) => l.slice(1).replace(/\/$/, ""));

  it.each([
    ["Dockerfile.postgres", postgres],
    ["Dockerfile.task", task],
  ])("lets every file %s copies from the build context through", (_file, all) => {
    const sources = all
      .filter((i) => i.op === "COPY" && !i.args.includes("--from="))
      .flatMap((i) => i.args.split(" ").filter((a) => !a.startsWith("--")).slice(0, -1))
      .map((s) => s.replace(/\/$/, ""));
    for (const src of sources) {
      expect(allowed.some((a) => src === a || src.startsWith(`${a}/`)), `${src} is excluded by .dockerignore`).toBe(true);
    }
  });
});

describe("shell scripts", () => {
  function shellScripts(dir: string): string[] {
    return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
      if (e.isDirectory()) {
        return ["node_modules", ".git", "dist", "coverage", ".demo"].includes(e.name) ? [] : shellScripts(join(dir, e.name));
      }
      return e.name.endsWith(".sh") ? [join(dir, e.name)] : [];
    });
  }

  it("pass shellcheck", () => {
    try {
      execFileSync("shellcheck", ["--version"], { stdio: "pipe" });
    } catch (err) {
      throw new Error("shellcheck is not installed; run `bash scripts/setup.sh` (it installs it)", { cause: err });
    }
    const scripts = shellScripts(ROOT).map((f) => relative(ROOT, f));
    expect(scripts).toEqual(expect.arrayContaining(["stack/swarm-run-task.sh", "stack/initdb/10-write-gate.sh"]));
    try {
      execFileSync("shellcheck", scripts, { cwd: ROOT, encoding: "utf8", stdio: "pipe" });
    } catch (err) {
      const out = (err as { stdout?: string }).stdout ?? "";
      expect.fail(`shellcheck found problems:\n${out}`);
    }
  });
});
