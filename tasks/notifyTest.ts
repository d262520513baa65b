// notify-test: one test ping (HEALTHCHECK_URL/log, which Healthchecks records without
// changing the check's state) and one test webhook (NOTIFY_URL, status "test"), and what each
// endpoint answered, so a person can check the setup once. Only hosts are printed.
import { hostname } from "node:os";
import type { Config } from "../lib/config/config.js";
import type { Deps } from "../lib/core/deps.js";
import { deliver, describeDelivery } from "../lib/notify/delivery.js";
import type { DeliveryResult } from "../lib/notify/delivery.js";
import { ConfigError } from "../lib/core/errors.js";
import { pingUrl } from "../lib/notify/healthcheck.js";
import { Secret } from "../lib/core/secret.js";
import { TOOL } from "../lib/core/version.js";
import { webhookBody } from "../lib/notify/webhook.js";

export interface NotifyTestArgs {
  json: boolean;
}

export interface EndpointAnswer extends DeliveryResult {
  target: "healthcheck" | "webhook";
}

export interface NotifyTestReport {
  ok: boolean;
  endpoints: EndpointAnswer[];
}

export async function run(config: Config, deps: Deps, args: NotifyTestArgs): Promise<NotifyTestReport> {
  const { healthcheckUrl, webhookUrl, timeoutSeconds } = config.notify;
  if (healthcheckUrl === null && webhookUrl === null) {
    throw new ConfigError("neither HEALTHCHECK_URL nor NOTIFY_URL is set (nor their _FILE variants); set at least one to test it");
  }
  const host = hostname();
  const text = `${TOOL.name} notify-test from ${host}: if you read this, notifications arrive`;
  const sends: Promise<EndpointAnswer>[] = [];
  if (healthcheckUrl !== null) {
    const url = new Secret(pingUrl(healthcheckUrl.reveal(), "log"));
    sends.push(deliver({ url, method: "POST", body: text + "\n", contentType: "text/plain; charset=utf-8" }, timeoutSeconds * 1000).then((r) => ({ target: "healthcheck", ...r })));
  }
  if (webhookUrl !== null) {
    const report = { task: "notify-test", tier: null, status: "success", exitCode: 0, message: null, backup: null, bytes: null, durationSeconds: 0, host, time: deps.now() } as const;
    const body = { ...webhookBody(report, TOOL), status: "test", message: text, text };
    sends.push(deliver({ url: webhookUrl, method: "POST", body: JSON.stringify(body), contentType: "application/json" }, timeoutSeconds * 1000).then((r) => ({ target: "webhook", ...r })));
  }
  const endpoints = await Promise.all(sends);
  const result = { ok: endpoints.every((e) => e.ok), endpoints };
  deps.out(args.json ? JSON.stringify(result, null, 2) + "\n" : formatNotifyTest(result));
  return result;
}

export function formatNotifyTest(r: NotifyTestReport): string {
  const lines = r.endpoints.map((e) => {
    const answer = e.body === "" ? "" : `  answered ${JSON.stringify(e.body)}`;
    return `${e.ok ? "ok  " : "FAIL"}  ${e.target.padEnd(11)}  ${e.host}  ${describeDelivery(e)}${answer}`;
  });
  lines.push(r.ok ? "every configured endpoint answered 2xx" : "an endpoint did not answer 2xx; check the URL (the host is shown above) and that this node can reach it");
  return lines.join("\n") + "\n";
}
