/** ckpt-run's criu engine (registry.ts): the node's daemon makes the checkpoints, whichever engine it runs; no options of its own. */
import type { JobEngine } from '../link.js';
import { DaemonLink } from './daemon-link.js';

export const DAEMON_LINK_ENGINE: JobEngine<undefined, Record<never, never>> = {
  summary: "the node's daemon dumps the program",
  help:
    "  criu (default)  the node's ckpt-daemon dumps the program with CRIU and restores it: nothing to\n" +
    '                  change in the program; needs ckpt-daemon on the node, one node, no GPU.\n',
  options: {},
  settings: () => undefined,
  link: (_settings, context) => new DaemonLink(context),
  usesDaemon: true,
  programEnvironment: (env) => env,
};
