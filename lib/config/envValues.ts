// Reading one environment variable into a value, for lib/config/config.ts and the settings files
// beside it: each failure is a ConfigError naming the variable, the value and the fix.
import { readFileSync } from "node:fs";
import { ConfigError, errnoCode } from "../core/errors.js";
import { Secret } from "../core/secret.js";

export type Env = Readonly<Record<string, string | undefined>>;

export function str(env: Env, name: string, fallback: string): string {
  const v = env[name];
  return v === undefined || v === "" ? fallback : v;
}

export function int(env: Env, name: string, fallback: number, min: number, max: number, hint: string): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw.trim())) {
    throw new ConfigError(`${name}=${JSON.stringify(raw)} is not a whole number; ${hint}`);
  }
  const n = Number(raw.trim());
  if (n < min || n > max) throw new ConfigError(`${name}=${raw} is out of range ${min}..${max}; ${hint}`);
  return n;
}

export function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = str(env, name, fallback).trim().toLowerCase();
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new ConfigError(`${name}=${JSON.stringify(env[name])} is not one of ${allowed.join(", ")}; set it to one of them or unset it for "${fallback}"`);
  }
  return raw as T;
}

export function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(`${name}=${JSON.stringify(raw)} is not a boolean; use true or false`);
}

/** Reads a Docker secret file; strips one trailing newline, which `echo … | docker secret create` adds. */
export function readSecretFile(name: string, path: string, fix: string): Secret {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`${name}=${path} is not readable (${errnoCode(err) ?? "error"}); ${fix}`, { cause: err });
  }
  const value = text.replace(/\r?\n$/, "");
  if (value === "") throw new ConfigError(`${name}=${path} is empty; ${fix}`);
  return new Secret(value);
}
