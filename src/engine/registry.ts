/**
 * The engines a job can choose (ckpt-run --engine), one line each: the link the supervisor
 * talks through (link.ts). criu: the node's daemon dumps and restores the program (its engines,
 * criu/ and restart/, are ckpt-daemon's choice: cli/ckpt-daemon.ts, simulate/engine-choice.ts);
 * app: the program saves itself on a signal (app/).
 */
import { AppLink, type AppSettings } from './app/app-link.js';
import { DaemonLink, type DaemonLinkOptions } from './daemon-link/daemon-link.js';
import type { CheckpointLink } from './link.js';
import type { RunDirPaths } from '../protocol/run-dir.js';
import type { StopReason } from '../state/run-state.js';

/** All a link may be built from: the job's settings, and the supervisor's callbacks. */
export interface LinkContext extends DaemonLinkOptions {
  paths: RunDirPaths;
  /** --engine app's settings (--app-*), when it is the engine chosen. */
  app?: AppSettings;
  /** Why the program is asked to save, from what the job knows at once. */
  reasonNow(): StopReason;
}

export type EngineName = 'criu' | 'app';

export const ENGINES: Record<EngineName, (context: LinkContext) => CheckpointLink | undefined> = {
  criu: (context) => new DaemonLink(context),
  app: ({ app, paths, reasonNow }) => app && new AppLink({ ...app, paths, reasonNow }),
};
