// What every task receives besides its config: the clock, the logger, the process
// environment for child programs, and where command results are printed.
import type { Logger } from "./log.js";

export interface Deps {
  log: Logger;
  now: () => Date;
  /** Base environment for child processes (PATH and locale); connection variables are added per call. */
  env: NodeJS.ProcessEnv;
  /** Command results for people or machines (tables, JSON); logs go to `log`. */
  out: (text: string) => void;
}
