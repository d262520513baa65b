// Set up for every test file (vitest.config.ts setupFiles): the folders tempDir() made are
// removed after the file's tests, pass or fail, so runs leave nothing in the temp dir.
import { afterAll } from "vitest";
import { removeTempDirs } from "./helpers.js";

afterAll(() => removeTempDirs());
