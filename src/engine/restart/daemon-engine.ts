/** The restart engine as ckpt-daemon and the dry run build it (engine/daemon-registry.ts): nothing to probe, it works anywhere. */
import type { DaemonEngine } from '../engine.js';
import { RestartEngine } from './restart.js';

export const RESTART_DAEMON_ENGINE: DaemonEngine = {
  title: 'the restart engine',
  about: 'no CRIU: starts the program again, keeps no memory state',
  limits:
    'each "restore" starts the program again from the beginning and keeps no memory state. ' +
    'It tests the job script and the signal/resubmission loop, not the checkpoint itself',
  forDaemon: async () => ({ engine: new RestartEngine() }),
  forDryRun: async () => ({ engine: new RestartEngine() }),
};
