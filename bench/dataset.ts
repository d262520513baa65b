// The benchmark's data: the issue's multi-database cluster (pgbench at a scale, a text/jsonb
// table of 20 000 rows per scale unit in its own database, five small application
// databases and two roles), and a cluster of many small databases for the incremental cases.
// Deterministic: the same scale gives the same rows.
import { execFileSync } from "node:child_process";
import { findServerBinary, which } from "../lib/core/bin.js";
import type { BenchCluster } from "./cluster.js";
import { psqlScript, query } from "./cluster.js";

export const DOCS_ROWS_PER_SCALE = 20_000;
export const SMALL_DATABASES = ["shop", "crm", "wiki", "billing", "auth"];

const WORDS = `lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua
enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip ex ea commodo consequat duis aute irure in reprehenderit
voluptate velit esse cillum fugiat nulla pariatur excepteur sint occaecat cupidatat non proident sunt culpa qui officia deserunt mollit
anim id est laborum backup restore cluster database table index vacuum replica snapshot archive storage network latency throughput
swarm node service container volume secret config schedule retention differential incremental full checksum manifest stream pipe`
  .split(/\s+/)
  .filter((w) => w !== "");

function pgbench(c: BenchCluster, database: string, scale: number): void {
  const bin = findServerBinary("pgbench") ?? which("pgbench");
  if (bin === null) throw new Error("pgbench not found (it ships with the postgresql package); run scripts/setup.sh");
  execFileSync(bin, ["-i", "-q", "-s", String(scale), database], { stdio: ["ignore", "ignore", "pipe"], env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...c.env } });
}

const DOCS_SQL = (rows: number) => `
CREATE TABLE docs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  title text NOT NULL,
  body text NOT NULL,
  meta jsonb NOT NULL,
  created_at timestamptz NOT NULL
);
CREATE TEMP TABLE words AS SELECT ARRAY[${WORDS.map((w) => `'${w}'`).join(",")}]::text[] AS w;
INSERT INTO docs (title, body, meta, created_at)
SELECT 'Document ' || g || ': ' || w[1 + abs(hashint8(g)) % ${WORDS.length}],
       array_to_string(ARRAY(SELECT w[1 + abs(hashint8(g * 64 + i)) % ${WORDS.length}] FROM generate_series(1, 40 + g % 40) i), ' '),
       jsonb_build_object('n', g, 'owner', md5((g % 5000)::text), 'score', (abs(hashint8(g)) % 10000) / 100.0,
                          'tags', jsonb_build_array(w[1 + g % 17], w[1 + g % 101]), 'draft', g % 7 = 0),
       timestamptz '2024-01-01 00:00:00+00' + g * interval '37 seconds'
  FROM generate_series(1, ${rows}) g, words;
CREATE INDEX docs_created_at ON docs (created_at);
CREATE INDEX docs_meta ON docs USING gin (meta jsonb_path_ops);
`;

/** A small application database: a few related tables, a view, a function, grants. */
const SMALL_SQL = (seed: number) => `
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE, created date NOT NULL);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, total numeric(10,2) NOT NULL, note text);
INSERT INTO customers (name, email, created)
SELECT 'Customer ' || g, 'c' || g || '@example.org', date '2020-01-01' + (g * ${seed}) % 1500 FROM generate_series(1, 2000) g;
INSERT INTO orders (customer_id, total, note)
SELECT 1 + (g * 7) % 2000, ((g * ${seed}) % 100000) / 100.0, CASE WHEN g % 3 = 0 THEN 'gift' END FROM generate_series(1, 10000) g;
CREATE INDEX orders_customer ON orders (customer_id);
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 500;
CREATE FUNCTION order_count(c int) RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM orders WHERE customer_id = c';
GRANT SELECT ON ALL TABLES IN SCHEMA public TO reporter;
ALTER TABLE orders OWNER TO app_owner;
`;

export interface DatasetInfo {
  scale: number;
  docsRows: number;
  databases: { name: string; bytes: number }[];
  totalBytes: number;
}

export async function databaseSizes(c: BenchCluster): Promise<DatasetInfo["databases"]> {
  const rows = await query<{ name: string; bytes: string }>(c, "postgres", "SELECT datname AS name, pg_database_size(oid)::text AS bytes FROM pg_database WHERE datname <> 'template0' ORDER BY datname");
  return rows.map((r) => ({ name: r.name, bytes: Number(r.bytes) }));
}

/** The issue's dataset: --scale 30 gives ~950 MB on disk, ~630 MB of SQL. */
export async function buildMainDataset(c: BenchCluster, scale: number, say: (m: string) => void): Promise<DatasetInfo> {
  const docsRows = DOCS_ROWS_PER_SCALE * scale;
  psqlScript(c, "postgres", "CREATE ROLE app_owner LOGIN; CREATE ROLE reporter NOLOGIN; GRANT reporter TO app_owner; CREATE DATABASE bench; CREATE DATABASE app;");
  say(`pgbench -i -s ${scale} into "bench"`);
  pgbench(c, "bench", scale);
  say(`${docsRows} rows of text/jsonb into "app"."docs"`);
  psqlScript(c, "app", DOCS_SQL(docsRows));
  say(`${SMALL_DATABASES.length} small databases`);
  SMALL_DATABASES.forEach((db, i) => {
    psqlScript(c, "postgres", `CREATE DATABASE ${db} OWNER app_owner;`);
    psqlScript(c, db, SMALL_SQL(13 + i * 10));
  });
  for (const db of ["bench", "app", ...SMALL_DATABASES]) psqlScript(c, db, "VACUUM ANALYZE;");
  const databases = await databaseSizes(c);
  return { scale, docsRows, databases, totalBytes: databases.reduce((a, d) => a + d.bytes, 0) };
}

export function manyName(i: number): string {
  return `db${String(i).padStart(2, "0")}`;
}

/**
 * Databases db01..dbNN: db02 holds a small table and is the template of the others; db01
 * (when `bigScale` > 0) holds a pgbench dataset, so that "one database changed" dumps
 * something worth measuring. Call with `from` = 1 first.
 */
export function addManyDatabases(c: BenchCluster, from: number, to: number, bigScale: number): void {
  const template = manyName(2);
  for (let i = from; i <= to; i++) {
    const name = manyName(i);
    if (i === 1 && bigScale > 0) {
      psqlScript(c, "postgres", `CREATE DATABASE ${name};`);
      pgbench(c, name, bigScale);
    } else if (name === template) {
      psqlScript(c, "postgres", `CREATE DATABASE ${name};`);
      psqlScript(c, name, "CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g; VACUUM ANALYZE items;");
    } else {
      psqlScript(c, "postgres", `CREATE DATABASE ${name} TEMPLATE ${template};`);
    }
  }
}

/** One row written in db01: the change an incremental must pick up. */
export function touchBigDatabase(c: BenchCluster, rep: number): void {
  psqlScript(c, manyName(1), `UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = ${rep + 1};`);
}
