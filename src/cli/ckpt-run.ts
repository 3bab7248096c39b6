/** `ckpt-run`: the command an OAR or Slurm job script runs. Its options and --help live here. */
import { Command, InvalidArgumentError, Option, type OptionValues } from 'commander';
import { EXIT_CODE_HELP } from '../base/exit-codes.js';
import { chooseEngine, DEFAULT_ENGINE, ENGINES, type EngineName } from '../engine/registry.js';
import { DEFAULT_DUMP_SAFETY, DUMP_OVERHEAD_MS, PLAN_MARGIN_MS, DEFAULT_BYTES_PER_SEC } from '../launcher/final-plan.js';
import { SAMPLE_MS } from '../launcher/final-timing.js';
import { runJob } from '../launcher/job.js';
import { createLogger } from '../log/logger.js';
import { holdSignal } from '../proc/early-signals.js';
import { DEFAULT_SPOOL_DIR } from '../protocol/spool-request.js';
import { addEngineOptions, ENGINE_CHOICE_HELP, ENGINES_HELP, givenIn } from './engine-options.js';
import { durationOption, factorOption, runCli, secondsOption, signalOption, wholeNumberOption } from './run-cli.js';

const PROTOCOL_HELP = `
How it works
  ckpt-run starts COMMAND in the background (own session, stdin /dev/null, output appended to
  files in the run folder and relayed live to ckpt-run's stdout/stderr). On the checkpoint
  signal it writes "PID\\nDIR\\n" to SPOOL/JOBID.checkpoint; the node's checkpoint daemon
  (ckpt-daemon, or the cluster's CRIU daemon) dumps the program into DIR/checkpoint/ and creates
  DIR/checkpoint_ok. ckpt-run then exits 99 and OAR resubmits the job (type "idempotent";
  under Slurm, ckpt-run requeues the job itself).
  The resubmitted job finds the checkpoint, writes "DIR\\n" to SPOOL/JOBID.resume, waits for the
  daemon's DIR/checkpoint/pidfile, and watches the restored program until it ends; ckpt-run
  then exits with the program's own exit code. A finished run is never resumed again.

Files (in the working directory, which must be on a shared filesystem)
  .ckpt-run/RUNID/             one folder per run; RUNID comes from OAR_ARRAY_ID and
                               OAR_ARRAY_INDEX (Slurm: SLURM_JOB_ID), which stay the same
                               across resubmissions
    state.json                 run record: status, restarts, output offsets, job history
    checkpoint/ checkpoint_ok  the daemon's images and its "dump complete" mark; the images
                               are removed once the program finishes (--keep-images keeps
                               them); a failed or stopped run keeps its last checkpoint
    checkpoint.old/            the checkpoint before it, while the daemon makes the next one
    checkpoint.gen-TIME/       older checkpoints kept by --keep
    checkpoint_stats           the last checkpoint's size and how long the program was frozen
    stdout.log stderr.log      the program's output (relayed once to each job's output)
    *.rolled-back.log          output written after the last checkpoint by a job that was
                               killed without a new one: the resumed program does it again
    exit_status                the program's exit code, written by the shim at the tree's root
    dump_failed restore_failed ckpt-daemon's reason when a dump or a restore failed

OAR job script (the signal goes to the job's shell: ckpt-run must replace it, hence "exec")
  #OAR -t idempotent
  #OAR --checkpoint 120
  #OAR -l walltime=2:00:00
  exec ckpt-run -- ./my-simulation --steps 1000000

Slurm job script (the same rule with --signal=B:; exit 99 alone resubmits nothing, so after a
checkpoint ckpt-run runs "scontrol requeue" itself: Slurm ends the job and runs it again, same
job id, after its requeue delay (2 minutes by default); append, or the requeued job truncates the output)
  #SBATCH --requeue
  #SBATCH --signal=B:USR2@120
  #SBATCH --open-mode=append
  exec ckpt-run -- ./my-simulation --steps 1000000

Preemption (see README, "Surviving crashes and preemption")
  OAR besteffort jobs: "#OAR -t besteffort -t idempotent --checkpoint N": OAR sends the
  checkpoint signal when a job with priority needs the resources, kills the job N s or more later and
  resubmits it; ckpt-run checkpoints on that signal as at the walltime.
  Slurm preemptible partitions (PreemptMode=REQUEUE, GraceTime=G): Slurm 22.05 tells a
  preempted job's batch shell nothing (not its --signal either) until G is over; some 30 s
  later it sends the batch shell SIGTERM and, KillWait (30 s) later, SIGKILL to every process,
  and requeues the job. At that SIGTERM ckpt-run asks Slurm whether it preempts the job: if so
  it checkpoints the program (instead of passing SIGTERM on, as for scancel) within KillWait.
  Sooner, at the start of the grace time: "#SBATCH --requeue" and
  "exec ckpt-run --preemption-poll 10 --" checkpoint as soon as Slurm shows a PreemptTime,
  then requeue the job.
  The log and "ckpt-run status" say why each job stopped: walltime, preemption, manual, crash.

Try it locally first: ckpt-run simulate -- ./my-simulation --steps 1000
Where a run stands (status, restarts, last job, last checkpoint, disk use): ckpt-run status
The images no job will resume (finished or failed runs): ckpt-run clean [--yes]

Exit codes
${EXIT_CODE_HELP.map(([code, meaning]) => `  ${code.padEnd(6)} ${meaning}`).join('\n')}
`;

function positiveOption(value: string): number {
  const count = wholeNumberOption(value);
  if (count < 1) throw new InvalidArgumentError('expected 1 or more');
  return count;
}

/** ckpt-run's options, and the engines' own (engine-options.ts), which are the engine's to read. */
export interface LauncherCliOptions extends OptionValues {
  engine: EngineName;
  spoolDir: string;
  jobId?: string;
  runId?: string;
  signal: NodeJS.Signals;
  resumeTimeout: number;
  dumpTimeout: number;
  minRuntime?: number;
  walltime?: number;
  maxRestarts: number;
  pidNamespace: 'on' | 'off' | 'auto';
  daemonCheck: boolean;
  daemonGrace: number;
  quiet?: boolean;
  verbose?: boolean;
  /** Keep a finished run's checkpoint images (only `ckpt-run` itself has the option). */
  keepImages?: boolean;
  /** Periodic checkpoints, in seconds. */
  interval?: number;
  keep: number;
  /** Seconds between two questions to the scheduler: is this job preempted? (0: never ask). */
  preemptionPoll?: number;
  /** --no-self-timed turns it off. */
  selfTimed: boolean;
  dumpSafety: number;
}

/** Parses the options into the job's request and hands it over (launcher/job.ts). */
export function launch(argv: string[], options: LauncherCliOptions, env: NodeJS.ProcessEnv, workdir: string): Promise<number> {
  holdSignal(options.signal);
  const engine = chooseEngine(options.engine, givenIn(options), { checkpointSignal: options.signal, interval: options.interval !== undefined });
  const logger = createLogger('ckpt-run', options.verbose ? 'debug' : options.quiet ? 'warn' : 'info');
  // 'auto' (the old default: a namespace for root only) is kept so that older job scripts still
  // run; the program now sees the same world as root and as a user.
  if (options.pidNamespace === 'auto') logger.log('warn', "--pid-namespace auto now means off (the default): the program keeps the node's PID namespace, as root and as a user; say --pid-namespace on for the old behaviour as root");
  const ms = (seconds: number | undefined): number | undefined => (seconds === undefined ? undefined : seconds * 1000);
  return runJob({
    argv,
    workdir,
    env,
    logger,
    jobId: options.jobId,
    runId: options.runId,
    spoolDir: options.spoolDir,
    signal: options.signal,
    resumeTimeoutMs: options.resumeTimeout * 1000,
    dumpTimeoutMs: options.dumpTimeout * 1000,
    minRuntimeMs: ms(options.minRuntime),
    walltimeSec: options.walltime,
    maxRestarts: options.maxRestarts,
    selfTimed: options.selfTimed,
    dumpSafety: options.dumpSafety,
    intervalMs: ms(options.interval),
    keep: options.keep,
    pidNamespace: options.pidNamespace === 'on',
    daemonCheck: options.daemonCheck,
    daemonGraceMs: options.daemonGrace * 1000,
    preemptionPollMs: ms(options.preemptionPoll),
    keepImages: options.keepImages === true,
    engine,
  });
}

export function buildProgram(): Command {
  const program = new Command('ckpt-run')
    .description('Run a batch job that survives its walltime: checkpoint on the scheduler\'s signal, exit 99, resume when resubmitted.')
    .usage('[options] -- <command> [args...]')
    .argument('<command...>', 'the program to run, and its arguments')
    .option('--job-id <id>', 'this job\'s id, names the spool requests (default: $OAR_JOB_ID, or from $SLURM_JOB_ID)')
    .option('--run-id <id>', 'the run\'s stable key across resubmissions (default: from $OAR_ARRAY_ID/$OAR_ARRAY_INDEX or $SLURM_JOB_ID, else "default")')
    .option('--min-runtime <seconds>', 'do not exit 99 before the job has run this long (default: 62 under OAR, else 0)', secondsOption)
    .option('--walltime <seconds>', "the job's walltime, from its start, where the scheduler does not give it (OAR does): the log then says how much of it each dump leaves", secondsOption)
    .option('--keep-images', "keep the checkpoint images once the program has finished (by default they are removed then: no job resumes a finished run)")
    .option(
      '--interval <duration>',
      'also checkpoint every DURATION (90, 90s, 5m, 1.5h) while the program runs on: a job killed without its final checkpoint ' +
        '(node crash, OOM, preemption without warning) resumes from the last one, its open files cut back to that moment. ' +
        'Each costs a freeze of the program (the log says how long) and a full dump on disk. Needs ckpt-daemon on the node',
      durationOption,
    )
    .option(
      '--no-self-timed',
      "wait for the scheduler's signal alone. By default, where the job's end is known (OAR's walltime, Slurm's EndTime, --walltime), " +
        "ckpt-run also makes the final checkpoint by itself if no signal came by the walltime minus the dump's estimate: the program tree's " +
        `memory (sampled every ${SAMPLE_MS / 1000} s) at the throughput of this run's last checkpoint (before any, the rate the node's ckpt-daemon measured at its start, said in its heartbeat; ` +
        `without one ${DEFAULT_BYTES_PER_SEC / 1e6} MB/s, measured here and taken lower), ` +
        `plus ${DUMP_OVERHEAD_MS / 1000} s, times --dump-safety, plus ${PLAN_MARGIN_MS / 1000} s. The log says the plan and each change; ckpt-run status shows it`,
    )
    .option('--dump-safety <factor>', 'the self-timed final checkpoint allows the dump this many times its estimate', factorOption, DEFAULT_DUMP_SAFETY)
    .option('--keep <n>', 'how many complete checkpoints the run folder keeps, the current one included; older ones are checkpoint.gen-TIME/ (to resume one: make it checkpoint/ and touch checkpoint_ok)', positiveOption, 1)
    .option(
      '--preemption-poll <seconds>',
      'Slurm: ask every SECONDS whether Slurm preempts this job, and checkpoint at once when it does (a preempted job\'s batch shell gets no signal until the grace time is over; keep SECONDS well under the partition\'s GraceTime)',
      secondsOption,
    )
    .passThroughOptions()
    .enablePositionalOptions()
    .addOption(
      new Option('--spool-dir <dir>', "the checkpoint daemon's spool directory")
        .env('CKPT_SPOOL_DIR')
        .default(DEFAULT_SPOOL_DIR),
    )
    .option('--signal <name>', 'the checkpoint signal the scheduler sends', signalOption(['SIGKILL', 'SIGSTOP', 'SIGTERM', 'SIGINT', 'SIGHUP'], 'the checkpoint signal'), 'SIGUSR2' as NodeJS.Signals)
    .addOption(
      new Option('--engine <engine>', ENGINE_CHOICE_HELP)
        .choices(Object.keys(ENGINES))
        .default(DEFAULT_ENGINE),
    )
    .option('--resume-timeout <seconds>', 'how long to wait for the daemon to restore', secondsOption, 600)
    .option('--dump-timeout <seconds>', 'how long the daemon may take to complete a dump', secondsOption, 300)
    .option('--max-restarts <n>', 'stop (exit 10) instead of exiting 99 after this many resubmissions', wholeNumberOption, 100)
    .addOption(
      new Option(
        '--pid-namespace <mode>',
        "on (root only): start the program as init of its own PID namespace, so restores never hit a PID in use; it keeps the node's /proc, where /proc/<its own PID> is another process. auto: as off (what it meant for users; kept for older job scripts)",
      )
        .choices(['off', 'on', 'auto'])
        .default('off'),
    )
    .option('--no-daemon-check', 'do not fail fast when no daemon heartbeat is seen (for daemons without one)')
    .option('--daemon-grace <seconds>', 'how long a request may stay unread, with no daemon heartbeat, before giving up', secondsOption, 5)
    .option('-q, --quiet', 'log only warnings and errors')
    .option('-v, --verbose', 'log every step')
    .addHelpText('after', `${ENGINES_HELP}${PROTOCOL_HELP}`);
  addEngineOptions(program);
  program.action(async (argv: string[], options: LauncherCliOptions) => {
    process.exitCode = await launch(argv, options, process.env, process.cwd());
  });
  return program;
}

/**
 * The subcommands, loaded only when the words before `--` may name one (or ask for help): the
 * simulation pulls in the daemon, the CRIU engine and execa, ~80 ms and ~6 MB that every real
 * job would otherwise pay at start.
 */
const SUBCOMMANDS: Record<string, () => Promise<Command>> = {
  simulate: async () => (await import('./simulate-command.js')).simulateCommand(),
  status: async () => (await import('./status-command.js')).statusCommand(),
  clean: async () => (await import('./clean-command.js')).cleanCommand(),
};

function subcommandsNamed(args: string[]): string[] {
  const end = args.indexOf('--');
  const head = end === -1 ? args : args.slice(0, end);
  const help = head.some((word) => ['help', '--help', '-h'].includes(word));
  return Object.keys(SUBCOMMANDS).filter((name) => help || head.includes(name));
}

export function main(args: string[]): Promise<void> {
  return runCli('ckpt-run', args, async () => {
    const program = buildProgram();
    for (const name of subcommandsNamed(args)) program.addCommand(await SUBCOMMANDS[name]());
    return program;
  });
}
