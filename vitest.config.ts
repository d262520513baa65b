import { defineConfig } from "vitest/config";

// Two projects: fast pure-logic unit tests, and integration tests against real
// PostgreSQL clusters (started once per run by test/globalSetup.ts) and a real S3 server.
export default defineConfig({
  test: {
    // Several integration files back up the whole shared cluster while others create and drop
    // databases in it; one file at a time keeps a dropped database out of a running dump.
    fileParallelism: false,
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          setupFiles: ["test/cleanup.ts"],
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          globalSetup: ["test/globalSetup.ts"],
          setupFiles: ["test/cleanup.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          pool: "forks",
        },
      },
    ],
  },
});
