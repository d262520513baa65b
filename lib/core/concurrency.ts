// Small async helpers shared by the tasks: bounded parallel map, stages that stop together, and a sleep.

/** Maps `items` through `fn` with at most `limit` calls in flight; results keep the input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits for every stage of a pipeline of processes and streams; at the first failure
 * `tearDown` runs once, so no other stage is left hanging. Returns every failure, in stage
 * order (the caller picks the one that explains the others), and whether the teardown ran.
 */
export async function settleStages(stages: readonly Promise<unknown>[], tearDown: () => void): Promise<{ errors: unknown[]; tornDown: boolean }> {
  let tornDown = false;
  for (const s of stages) {
    s.catch(() => {
      if (tornDown) return;
      tornDown = true;
      tearDown();
    });
  }
  const settled = await Promise.allSettled(stages);
  return { errors: settled.flatMap((s) => (s.status === "rejected" ? [s.reason as unknown] : [])), tornDown };
}
