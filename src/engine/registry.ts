/**
 * The engines a job can choose (ckpt-run --engine), one line each: the link the supervisor
 * talks through (link.ts). criu: the node's daemon dumps and restores the program (its engines,
 * criu/ and restart/, are ckpt-daemon's choice: daemon-registry.ts);
 * app: the program saves itself on a signal (app/).
 */
import { AppLink, appEnvironment, type AppSettings } from './app/app-link.js';
import { DaemonLink, type DaemonLinkOptions } from './daemon-link/daemon-link.js';
import type { CheckpointLink } from './link.js';
import type { RunDirPaths } from '../protocol/run-dir.js';
import type { RunState, StopReason } from '../state/run-state.js';

/** All a link may be built from: the job's settings, and the supervisor's callbacks. */
export interface LinkContext extends DaemonLinkOptions {
  paths: RunDirPaths;
  /** --engine app's settings (--app-*), when it is the engine chosen. */
  app?: AppSettings;
  /** Why the program is asked to save, from what the job knows at once. */
  reasonNow(): StopReason;
}

export type EngineName = 'criu' | 'app';

/** What the job needs to know of an engine before its link runs. */
export interface JobEngine {
  /** Builds the link; undefined when the settings the engine needs are missing. */
  link(context: LinkContext): CheckpointLink | undefined;
  /** Its requests go to the node's daemon through the spool (else no spool is needed, nor a PID namespace: the program is started again). */
  usesDaemon: boolean;
  /** The program's environment under this engine, from the job's (ENV); RESUMED: this job resumes the run. */
  programEnvironment(env: NodeJS.ProcessEnv, paths: RunDirPaths, state: RunState, resumed: boolean): NodeJS.ProcessEnv;
}

export const ENGINES: Record<EngineName, JobEngine> = {
  criu: { link: (context) => new DaemonLink(context), usesDaemon: true, programEnvironment: (env) => env },
  app: { link: ({ app, paths, reasonNow }) => app && new AppLink({ ...app, paths, reasonNow }), usesDaemon: false, programEnvironment: appEnvironment },
};
