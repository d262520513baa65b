// The report of a restore --continue-on-error: every statement psql could not run, with the
// file, the database and the line in that database's section (psql counts from the
// section's "-- Database" header; the globals count from the top of the file).
import type { FailedStatements } from "./context.js";

export function formatStatementErrors(parts: readonly FailedStatements[]): string {
  const lines: string[] = [];
  for (const part of parts) {
    const where = part.database === null ? `the globals of ${part.file}` : `database ${JSON.stringify(part.database)} from ${part.file}`;
    lines.push(`${part.errors.count} failed statement(s) in ${where}:`);
    for (const e of part.errors.kept) lines.push(`  line ${e.line}${part.database === null ? "" : " of its section"}: ERROR: ${e.error}`);
    if (part.errors.count > part.errors.kept.length) lines.push(`  … and ${part.errors.count - part.errors.kept.length} more (the first ${part.errors.kept.length} are listed)`);
  }
  return `${lines.join("\n")}\n`;
}
