// Lint rules and why:
// - typescript-eslint "recommended": catches unsafe any and unused code without style churn.
// - no-floating-promises: an un-awaited promise in a backup pipeline is a silently lost failure.
// - no-console outside the CLI edge: every event goes through pino so it is one JSON line.
// - eqeqeq: no coercion surprises when comparing sizes, oids and exit codes.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "bench/results/**", "coverage/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
      eqeqeq: ["error", "always"],
      "no-console": "error",
    },
  },
  {
    files: ["tasks/cli.ts", "test/**/*.ts", "bench/**/*.ts", "scripts/**/*.ts"],
    rules: { "no-console": "off" },
  },
);
