// The tool's name and version as recorded in manifests and shown by --version.
import { readFileSync } from "node:fs";

function readVersion(): string {
  for (const rel of ["../../VERSION", "../../../VERSION"]) {
    try {
      return readFileSync(new URL(rel, import.meta.url), "utf8").trim();
    } catch {
      // try the next layout (source tree vs dist/)
    }
  }
  return "0.0.0-unknown";
}

export const TOOL = Object.freeze({ name: "pg-swarm-backup", version: readVersion() });
