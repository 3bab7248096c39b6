/** `ckpt-daemon`: the node service that serves ckpt-run's spool requests. Options, --help, exit codes. */
import { Command, Option } from 'commander';
import { openSync } from 'node:fs';
import { serveQueued, startDaemon, type DaemonOptions } from '../daemon/daemon.js';
import { DEFAULT_IMAGE_KEY, ImageKeyError, loadImageKey } from '../daemon/image-signature.js';
import { SpoolError } from '../daemon/spool.js';
import { HEARTBEAT_FILE, HEARTBEAT_INTERVAL_MS } from '../protocol/heartbeat.js';
import { DEFAULT_LOCAL_STATE_LIMIT } from '../protocol/local-state.js';
import { MAX_REQUEST_BYTES } from '../protocol/spool-request.js';
import { DEFAULT_CRIU_DEADLINE_MS, DEFAULT_KEEP_FILES_MAX } from '../engine/criu/criu.js';
import { formatFindings, MEMORY_CANARY_BYTES } from '../engine/criu/criu-probe.js';
import { probeForDaemon, type CriuDaemonSettings } from '../engine/criu/daemon-engine.js';
import { DAEMON_ENGINES, type DaemonEngineName } from '../engine/daemon-registry.js';
import { createLogger } from '../log/logger.js';
import { DEFAULT_SPOOL_DIR } from '../protocol/spool-request.js';
import { CliError, DaemonExit } from '../base/exit-codes.js';
import { megabytesOption, runCli, secondsOption, sizeOption } from './run-cli.js';

const HELP = `
Protocol (the same as the clusters' public CRIU daemon; see ckpt-run --help)
  SPOOL/JOBID.checkpoint  "PID\\nDIR\\n"  dump the tree of PID into DIR/checkpoint/, then create
                                        DIR/checkpoint_ok (a new file each time); the program stops
  SPOOL/JOBID.resume      "DIR\\n"       restore DIR/checkpoint/, move the tree into the job's OAR
                                        cgroups (removing those of the dumped job, which criu
                                        recreates), then write DIR/checkpoint/pidfile
  On failure: DIR/dump_failed (the program keeps running, the previous checkpoint is kept) or
  DIR/restore_failed, with CRIU's reason; the job side reports it at once. SPOOL/${HEARTBEAT_FILE}
  is refreshed every ${HEARTBEAT_INTERVAL_MS / 1000} s so that jobs can tell the daemon is alive; its
  second line lists what this daemon does beyond the public protocol ("features: leave-running"),
  its third how fast it dumped its memory canary at start ("dump-rate: N bytes/s (…)"): a job
  plans its final checkpoint with it until a dump of its own measures one (ckpt-run --help).
  ckpt-daemon's own extensions, beside the request in DIR (other daemons ignore them):
    answer_by        epoch ms by which the job needs the answer (see Deadlines)
    checkpoint_mode  "leave-running": a periodic checkpoint (ckpt-run --interval), the program
                     runs on after the dump (criu dump --leave-running)
    resume_from      the checkpoint_ok identity the job rolled its files back to: another
                     checkpoint is not restored (restore_failed, retryable)
    program_started  epoch ms the program started (written by ckpt-run at a fresh start): the
                     entries its user made in the node-local folders since then travel too
  and what it writes: checkpoint_stats (size, how long the program was frozen, its node-local
  files) before checkpoint_ok, and in the images ckpt-open-files: the files the tree holds open
  for writing, with their sizes, recorded while it is frozen (ckpt-run cuts them back before a
  resume); ckpt-cpu-features: this node's CPU (ckpt-run resumes only on a CPU that has them all);
  ckpt-local-state(.tar): the program's node-local files (the top-level entries of /tmp, /var/tmp,
  /dev/shm holding what it has open or mapped, then those its user made there since it started),
  archived as the user while it is frozen, put back as the user before the restore on whichever
  node (--local-state-limit; what stays is said).

Threat model (the full text, with what is not covered: SECURITY.md)
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
  - the job: where OAR has a cpuset /oar/USER_JOBID for the job id, USER must be the requester;
    a job id with "_" is refused where it would make OAR's cpuset names ambiguous.
  - checkpoint: PID is not 1, not the daemon, and no process of its tree (the daemon included)
    has another uid (real/effective/saved/fs), a group the requester lacks, a capability, or
    lost its "dumpable" flag (ran a setuid program). The dump goes into a new folder that only
    root can write; old images are deleted by an rm running as the requester. criu re-runs these
    checks on the frozen tree after the dump (post-dump); a tree that changed is not kept.
  - signed images: a complete dump is signed with an HMAC-SHA256 under the key --image-key (root
    only) over the name of every image file and the content of all but the memory pages
    (DIR/checkpoint/ckpt-daemon.sig). A resume of images without a valid signature (crafted,
    changed, or signed with another key) is refused before criu runs: criu acts on what the images
    name (opens, creates and truncates files, binds sockets, makes cgroups) before any check of
    the restored tree. Every node of a cluster must share the same key file.
  - resume: for the time of the restore DIR/checkpoint belongs to root (mode 0700) and may hold
    only plain files of the requester's (no symlink such as "parent", no hard link, no subfolder);
    the signed files are copied into a private folder, checked there, and criu restores that
    copy; it writes its log and pidfile there too. Before the restored tree runs, the action
    script scripts/criu-pre-resume-check.sh moves it into the new job's cgroups and checks every
    restored process: uid and groups of the requester, no capability, no real-time scheduling, no
    negative nice or oom_score_adj, no cgroup under /oar/ but the requester's own jobs, the node's
    namespaces (its own PID and time namespaces allowed), every open file, file mapping and
    working directory usable by the requester; otherwise it kills the tree.
  Not covered: criu's own actions while it restores images the daemon signed (e.g. one user's
  images, readable by another, restored for that other: the pre-resume check then kills the
  tree, after criu opened the files they name), resource limits in the images, and more; see
  SECURITY.md.

Checking a node (after installing it, and whenever criu or the kernel changed)
  ckpt-daemon --check runs what the daemon runs at start: criu --version, criu check, then a
  canary (a sleep of its own) dumped and restored, each bounded to 10 s, first with criu's
  defaults and, where the dump stalls at the hardware-breakpoint step (nodes whose hypervisor
  never delivers breakpoints: criu then waits for ever), again with breakpoints off. It prints
  the mode every criu call will use, the capabilities criu lacks, whether the prlimit shim is
  needed, soft-dirty and userfaultfd support, and exits 0 when criu is usable, 5 when not.
  Then a memory canary (a node process holding ${MEMORY_CANARY_BYTES / 1e6} MB) is dumped once, bounded to 10 s: its rate,
  fixed cost included, is the "dump rate" the daemon publishes (a failure is said, not fatal).

Deadlines: no frozen program
  Every criu run is bounded: --criu-deadline, or sooner when the job needs its answer sooner
  (ckpt-run writes DIR/answer_by: its --dump-timeout and its walltime, less a margin). A criu
  past it is killed where the program can go on (not while criu's parasite code is inside a task:
  it gets 10 s more to leave), the program is checked to run again, and dump_failed says at which
  stage criu was and whether the program runs, is still frozen, or is gone. A dump that stalled at
  the breakpoint step turns breakpoints off for every later call.

Lazy restore
  Where userfaultfd works (--check says), a restore runs the program as soon as its processes
  are back and a "criu lazy-pages" server brings its memory in behind it (2 GiB here: running
  after 0.13 s, every page in by 0.7 s, where a full restore takes 7-9 s). The images stay as
  they are until every page is in; the job's next request waits for that. A server that dies or
  stalls (reads nothing for 20 s) has the restored program killed before it blocks on a missing
  page: restore_failed says so, the checkpoint is kept, the next job resumes it. --restore full
  reads every page before the program runs.

Exit codes
  0   stopped by SIGTERM/SIGINT, or --once served the queue
  2   usage error
  3   the spool folder cannot be prepared (or is not the daemon's)
  4   the criu engine needs root
  5   criu cannot checkpoint on this node (--check says why; --criu PATH, CKPT_CRIU;
      install: bash scripts/install-criu.sh)
  6   the image key cannot be created or is refused (a symlink, not root's, readable by others)
  70  internal error
`;

/** The daemon's own options, and those its engines are built from (each engine's settings: engine/daemon-registry.ts). */
interface DaemonCliOptions extends CriuDaemonSettings {
  spoolDir: string;
  check?: boolean;
  imageKey: string;
  engine: DaemonEngineName;
  log?: string;
  once?: boolean;
  verbose?: boolean;
}

async function check(options: DaemonCliOptions): Promise<void> {
  const findings = await probeForDaemon(options);
  for (const line of formatFindings(findings)) process.stdout.write(`${line}\n`);
  if (findings.problem) throw new CliError(`criu cannot checkpoint on this node: ${findings.problem}`, DaemonExit.NoCriu);
}

/** --engine's help: each engine by name, with what its folder says of it where the name is not enough. */
const ENGINE_HELP = Object.entries(DAEMON_ENGINES)
  .map(([name, engine]) => (engine.about ? `${name} (${engine.about})` : name))
  .join(', or ');

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
  if (options.check) return check(options);
  const logger = createLogger('ckpt-daemon', options.verbose ? 'debug' : 'info', options.log ? openLog(options.log) : 2);
  const { engine, dumpRate } = await DAEMON_ENGINES[options.engine].forDaemon(options, logger);
  let imageKey: Buffer;
  try {
    const loaded = loadImageKey(options.imageKey);
    imageKey = loaded.key;
    if (loaded.created) {
      logger.log(
        'warn',
        `created the image key ${options.imageKey} (${loaded.key.length} random bytes, mode 0600): every node of a cluster must share ` +
          'the same key file (checkpoints move between nodes): copy this one to the same path on every node (root only, mode 0600)',
      );
    }
  } catch (error) {
    if (error instanceof ImageKeyError) throw new CliError(error.message, DaemonExit.ImageKey);
    throw error;
  }
  logger.log('info', `images are signed and checked with the key ${options.imageKey}`);
  const daemonOptions: DaemonOptions = { spoolDir: options.spoolDir, engine, logger, imageKey, dumpRate };
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
      new Option('--criu-deadline <seconds>', 'the longest one criu dump or restore may run before it is killed (the program runs on)')
        .argParser(secondsOption)
        .default(DEFAULT_CRIU_DEADLINE_MS / 1000),
    )
    .addOption(
      new Option('--local-state-limit <MB>', "the most of a program's node-local files (/tmp, /var/tmp, /dev/shm) one checkpoint carries to the next node; over it, none of those it holds, and of those it made, the smallest first while they fit (said at the checkpoint)")
        .argParser(megabytesOption)
        .default(DEFAULT_LOCAL_STATE_LIMIT, String(DEFAULT_LOCAL_STATE_LIMIT / 1e6)),
    )
    .addOption(
      new Option(
        '--keep-files-max <size>',
        'the most content of the files a program holds open for writing that one checkpoint keeps (changed blocks, new copies), e.g. 4G; past it a file gets only a checksum',
      )
        .argParser(sizeOption)
        .default(DEFAULT_KEEP_FILES_MAX, '4G'),
    )
    .addOption(
      new Option('--criu-breakpoints <mode>', "auto: probe whether hardware breakpoints trap here; on/off: take your word, skip the canary")
        .choices(['auto', 'on', 'off'])
        .default('auto'),
    )
    .addOption(
      new Option('--restore <how>', 'lazy: the program runs at once and its memory follows (where userfaultfd works, else full); full: read every page first')
        .choices(['lazy', 'full'])
        .default('lazy'),
    )
    .option('--check', "probe criu on this node (version, breakpoints, capabilities, shim, soft-dirty, userfaultfd), print the findings and exit: 0 usable, 5 not")
    .addOption(
      new Option('--image-key <file>', "the key that signs this cluster's images (root only; created if absent; the same file on every node)")
        .env('CKPT_IMAGE_KEY')
        .default(DEFAULT_IMAGE_KEY),
    )
    .addOption(
      new Option('--engine <name>', ENGINE_HELP)
        .choices(Object.keys(DAEMON_ENGINES))
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
