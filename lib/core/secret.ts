// A value that must never reach argv, logs or error messages. It prints as [redacted]
// through every path Node uses to render objects (toString, JSON, util.inspect).
import { inspect } from "node:util";

export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return "[redacted]";
  }
  toJSON(): string {
    return "[redacted]";
  }
  [inspect.custom](): string {
    return "[redacted]";
  }
}

/** Replaces every occurrence of the secrets' values in a text (for stderr tails of child processes). */
export function redact(text: string, secrets: readonly (Secret | null | undefined)[]): string {
  let out = text;
  for (const s of secrets) {
    const v = s?.reveal();
    if (v !== undefined && v.length >= 3) out = out.split(v).join("[redacted]");
  }
  return out;
}
