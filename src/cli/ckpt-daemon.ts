/** `ckpt-daemon`: the node service that serves ckpt-run's spool requests. Options, --help, exit codes. */
import { Command, Option } from 'commander';
import { execa } from 'execa';
import { openSync } from 'node:fs';
import { serveQueued, startDaemon, type DaemonOptions } from '../daemon/daemon.js';
import { SpoolError } from '../daemon/spool.js';
import { HEARTBEAT_FILE, HEARTBEAT_INTERVAL_MS } from '../protocol/daemon-report.js';
import { MAX_REQUEST_BYTES } from '../protocol/spool-request.js';
import { CriuEngine } from '../engine/criu.js';
import type { CheckpointEngine } from '../engine/engine.js';
import { RestartEngine } from '../engine/restart.js';
import { createLogger } from '../log/logger.js';
import { DEFAULT_SPOOL_DIR } from '../protocol/spool-request.js';
import { CliError } from './exit-codes.js';
import { runCli } from './run-cli.js';

export const DaemonExit = { Usage: 2, Spool: 3, NotRoot: 4, NoCriu: 5, Internal: 70 } as const;

const HELP = `
Protocol (the same as the clusters' public CRIU daemon; see ckpt-run --help)
  SPOOL/JOBID.checkpoint  "PID\\nDIR\\n"  dump the tree of PID into DIR/checkpoint/, then create
                                        DIR/checkpoint_ok (a new file each time); the program stops
  SPOOL/JOBID.resume      "DIR\\n"       restore DIR/checkpoint/, move the tree into the job's OAR
                                        cgroups (removing those of the dumped job, which criu
                                        recreates), then write DIR/checkpoint/pidfile
  On failure: DIR/dump_failed (the program keeps running, the previous checkpoint is kept) or
  DIR/restore_failed, with CRIU's reason; the job side reports it at once. SPOOL/${HEARTBEAT_FILE}
  is refreshed every ${HEARTBEAT_INTERVAL_MS / 1000} s so that jobs can tell the daemon is alive.

Threat model
  The daemon runs as root; every user of the node can write requests and owns the folders and
  images it acts on. A request must never let a user act on another user's processes or files,
  gain a uid, group or capability, or make root write, delete or read through a path the user
  controls. The requester is the owner of the request file. Checks, in order:
  - the request file: a regular file (not a symlink, FIFO or folder; opened O_NOFOLLOW), no other
    hard link, at most ${MAX_REQUEST_BYTES} bytes, exactly the protocol's lines; taken out of the
    spool (renamed into SPOOL/.ckpt-daemon, mode 0700) before it is read. Refused requests are
    logged and deleted; a request without its final newline gets 2 s to be completed.
  - the user: known to the node (id); a daemon not running as root serves only its own user.
  - DIR: absolute, equal to its realpath (no symlink anywhere), a directory owned by the
    requester (any for root), DIR/checkpoint a real directory if present. DIR is then held open
    and every later step goes through that descriptor, so swapping a path changes nothing.
  - the job: where OAR has a cpuset /oar/USER_JOBID for the job id, USER must be the requester.
  - checkpoint: PID is not 1, not the daemon, and no process of its tree (the daemon included)
    has another uid (real/effective/saved/fs), a group the requester lacks, a capability, or
    lost its "dumpable" flag (ran a setuid program). The dump goes into a new folder that only
    root can write; old images are deleted by an rm running as the requester.
  - resume: for the time of the restore DIR/checkpoint belongs to root (mode 0700) and may hold
    only plain files (no symlink such as "parent", no hard link, no subfolder); criu writes its
    log and pidfile into a private folder. Before the restored tree runs, the action script
    scripts/criu-pre-resume-check.sh checks every restored process: uid and groups of the
    requester, no capability, the node's namespaces (its own PID and time namespaces allowed), every open
    file, file mapping and working directory usable by the requester; otherwise it kills the tree.
  Not covered: what criu itself does while restoring (it creates files the images name, e.g. for
  unix sockets, before the check runs). Restoring images is as trustworthy as that.

Exit codes
  0   stopped by SIGTERM/SIGINT, or --once served the queue
  2   usage error
  3   the spool folder cannot be prepared (or is not the daemon's)
  4   the criu engine needs root
  5   criu cannot be run (--criu PATH, CKPT_CRIU; install: bash scripts/install-criu.sh)
  70  internal error
`;

interface DaemonCliOptions {
  spoolDir: string;
  criu: string;
  engine: 'criu' | 'restart';
  log?: string;
  once?: boolean;
  verbose?: boolean;
}

async function chooseEngine(options: DaemonCliOptions): Promise<CheckpointEngine> {
  if (options.engine === 'restart') return new RestartEngine();
  if (process.getuid?.() !== 0) {
    throw new CliError(
      "the criu engine needs root (CRIU dumps and restores other users' processes); as a user, try --engine restart",
      DaemonExit.NotRoot,
    );
  }
  const probe = await execa(options.criu, ['--version'], { reject: false });
  if (probe.exitCode !== 0) {
    const why = (probe.shortMessage ?? `exit code ${probe.exitCode}`).split('\n')[0];
    throw new CliError(
      `cannot run criu (${options.criu}): ${why} (install it with bash scripts/install-criu.sh, or give --criu PATH)`,
      DaemonExit.NoCriu,
    );
  }
  return new CriuEngine(options.criu);
}

function openLog(path: string): number {
  try {
    return openSync(path, 'a', 0o640);
  } catch (error) {
    throw new CliError(`cannot open the log file ${path}: ${(error as Error).message}`, DaemonExit.Usage);
  }
}

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve());
  });
}

async function run(options: DaemonCliOptions): Promise<void> {
  const engine = await chooseEngine(options);
  const logger = createLogger('ckpt-daemon', options.verbose ? 'debug' : 'info', options.log ? openLog(options.log) : 2);
  const daemonOptions: DaemonOptions = { spoolDir: options.spoolDir, engine, logger };
  try {
    if (options.once) {
      await serveQueued(daemonOptions);
      return;
    }
    const daemon = await startDaemon(daemonOptions);
    await untilSignal();
    await daemon.stop();
  } catch (error) {
    if (error instanceof SpoolError) throw new CliError(error.message, DaemonExit.Spool);
    throw error;
  }
}

export function buildProgram(): Command {
  const program = new Command('ckpt-daemon')
    .description('Serve checkpoint and resume requests of ckpt-run jobs on this node (run as root, one per node).')
    .addOption(
      new Option('--spool-dir <dir>', 'the spool folder jobs write requests into').env('CKPT_SPOOL_DIR').default(DEFAULT_SPOOL_DIR),
    )
    .addOption(new Option('--criu <path>', 'the criu command').env('CKPT_CRIU').default('criu'))
    .addOption(
      new Option('--engine <name>', 'criu, or restart (no CRIU: starts the program again, keeps no memory state)')
        .choices(['criu', 'restart'])
        .default('criu'),
    )
    .option('--log <file>', 'append the log to FILE instead of stderr')
    .option('--once', 'serve the requests already queued, then exit')
    .option('-v, --verbose', 'log every step')
    .addHelpText('after', HELP)
    .action(async (options: DaemonCliOptions) => run(options));
  return program;
}

export function main(args: string[]): Promise<void> {
  return runCli('ckpt-daemon', args, buildProgram);
}
