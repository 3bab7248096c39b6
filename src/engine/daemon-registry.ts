/**
 * The engines ckpt-daemon can run (its --engine), one line each, built as each folder's
 * daemon-engine.ts says; the dry run chooses among them too, in this order for its "auto"
 * (simulate/engine-choice.ts). The job's side of every one is the daemon link (registry.ts:
 * criu). Apart from registry.ts because the CRIU engine loads execa, which a job never needs.
 */
import { CRIU_DAEMON_ENGINE } from './criu/daemon-engine.js';
import { RESTART_DAEMON_ENGINE } from './restart/daemon-engine.js';

export const DAEMON_ENGINES = { criu: CRIU_DAEMON_ENGINE, restart: RESTART_DAEMON_ENGINE };

export type DaemonEngineName = keyof typeof DAEMON_ENGINES;
