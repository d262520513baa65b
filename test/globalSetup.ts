// One shared cluster for the integration project; tests that wipe, crash or restore
// into a cluster start their own with createCluster().
import type { TestProject } from "vitest/node";
import type { ClusterInfo } from "./cluster.js";
import { createCluster, destroyCluster } from "./cluster.js";

declare module "vitest" {
  export interface ProvidedContext {
    cluster: ClusterInfo;
  }
}

let cluster: ClusterInfo | undefined;

export async function setup(project: TestProject): Promise<void> {
  cluster = await createCluster({ name: "shared" });
  project.provide("cluster", cluster);
}

export function teardown(): void {
  if (cluster !== undefined) destroyCluster(cluster);
}
