/** `ckpt-run simulate`: try a job locally, with the scheduler and the daemon played for you. */
import { Command, InvalidArgumentError, Option, type OptionValues } from 'commander';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { startDaemon } from '../daemon/daemon.js';
import { IMAGE_KEY_BYTES } from '../daemon/image-signature.js';
import { chooseEngine, DEFAULT_ENGINE } from '../engine/registry.js';
import { chooseDaemonEngine, dryRunEngines, ENGINE_REQUESTS } from '../simulate/engine-choice.js';
import type { SignalSchedule } from '../simulate/schedule.js';
import { describeSchedule } from '../simulate/schedule.js';
import { simulate } from '../simulate/simulate.js';
import { formatSummary } from '../simulate/summary.js';
import { createLogger } from '../log/logger.js';
import { CliError, ExitCode } from '../base/exit-codes.js';
import { plural } from '../base/words.js';
import { addEngineOptions, engineArguments, givenIn } from './engine-options.js';
import { durationOption, factorOption, secondsOption, wholeNumberOption } from './run-cli.js';

/** The dry run's options, and the engines' own (engine-options.ts), passed on to each job. */
interface SimulateOptions extends OptionValues {
  walltime?: number;
  checkpoint?: number;
  every?: number;
  manual?: boolean;
  maxCycles: number;
  engine: string;
  criu: string;
  json?: string;
  resumeTimeout: number;
  dumpTimeout: number;
  quiet?: boolean;
  verbose?: boolean;
  interval?: number;
  crashAt?: number;
  preemptAt?: number;
  preemptGrace: number;
  selfTimed: boolean;
  dumpSafety?: number;
}

const HELP = `
The whole loop runs here, as OAR and the node daemon would run it: each cycle is a real
ckpt-run job (synthetic job id, private spool dir) whose program is checkpointed by an
embedded daemon, and exit 99 starts the next job, which resumes it. It stops when the program
finishes or after --max-cycles jobs, and prints per cycle the run time, dump time, image size,
restore time and what ended it, then the verdict.

Engines: real CRIU when you are root and criu works (sudo bash scripts/install-criu.sh);
otherwise "restart", which starts the program again from scratch at each resume (announced).
"app" is ckpt-run --engine app, for programs that save themselves on a signal (see ckpt-run
--help, Engines): no daemon, no root, no CRIU, and a real resume from the program's own state.

With --walltime/--checkpoint each job knows its walltime, as under OAR, and says how long each
dump took of the time the checkpoint signal left: the way to choose oarsub's --checkpoint for
your program's size before you queue it. Each job also plans its final checkpoint itself (see
ckpt-run --help, --no-self-timed) and makes it when the signal has not come by then; --walltime
alone plays a scheduler that sends no signal at all: the self-timed checkpoints are all there is. A job still running at its walltime is killed with
all its processes and not resubmitted, as OAR does: the simulation then fails and says so.

Exit code: the program's own when it finished and every checkpoint and restore worked (0 when
--max-cycles stopped it); 13 when any checkpoint or restore failed, even if the program then
finished (on the cluster it would have met its walltime with nothing to resume); a job's own
code (e.g. 137, killed at its walltime) when that ended the run; 2 on a usage error.

Examples
  ckpt-run simulate --engine app --every 3 -- examples/saving-counter.sh 30 0.2 7
  ckpt-run simulate --every 4 -- examples/counter.sh 40 0.25 7
  ckpt-run simulate --walltime 120 --checkpoint 30 --max-cycles 3 -- ./my-simulation
  ckpt-run simulate --walltime 60 -- ./my-simulation   # no signal: self-timed checkpoints
  ckpt-run simulate --manual -- ./my-simulation     # then: kill -USR2 <pid it prints>
  ckpt-run simulate --interval 5 --crash-at 12 --manual -- examples/counter.sh 60 0.25 7
                                                    # a crash 12 s in: the next job resumes
                                                    # the last periodic checkpoint
  ckpt-run simulate --preempt-at 8 --manual -- ./my-simulation
`;

function scheduleOf(options: SimulateOptions): SignalSchedule {
  const chosen = [options.walltime !== undefined, options.every !== undefined, options.manual === true].filter(Boolean).length;
  if (chosen > 1) throw new CliError('choose one of --walltime/--checkpoint, --every and --manual', ExitCode.Usage);
  if (options.walltime !== undefined || options.checkpoint !== undefined) {
    if (options.walltime === undefined) throw new CliError('--checkpoint needs --walltime (it counts back from the walltime)', ExitCode.Usage);
    // Without --checkpoint: a scheduler that sends no signal; each job times its final checkpoint itself.
    if (options.checkpoint === undefined) {
      if (options.selfTimed === false) throw new CliError('--walltime without --checkpoint plays a scheduler that sends no signal: it needs the self-timed final checkpoint (drop --no-self-timed)', ExitCode.Usage);
      return { kind: 'walltime', walltimeSec: options.walltime };
    }
    if (options.checkpoint >= options.walltime) {
      throw new CliError('--checkpoint must be smaller than --walltime (it counts back from the walltime)', ExitCode.Usage);
    }
    return { kind: 'walltime', walltimeSec: options.walltime, checkpointSec: options.checkpoint };
  }
  if (options.manual) return { kind: 'manual' };
  return { kind: 'every', everySec: options.every ?? 10 };
}

function positive(value: string): number {
  const seconds = secondsOption(value);
  if (seconds === 0) throw new InvalidArgumentError('expected more than 0 seconds');
  return seconds;
}

export function simulateCommand(): Command {
  const command = new Command('simulate')
    .description('try a job locally: simulated checkpoint signals, an embedded daemon, resubmission on exit 99')
    .usage('[options] -- <command> [args...]')
    .argument('<command...>', 'the program to run, and its arguments')
    .option('--walltime <seconds>', 'simulated walltime of each job', positive)
    .option('--checkpoint <seconds>', 'send the checkpoint signal this long before the walltime (like oarsub --checkpoint)', positive)
    .option('--every <seconds>', "send the checkpoint signal this long after each job's program runs: started, or restored (default 10)", positive)
    .option('--manual', 'send no signal by itself: checkpoint with kill -USR2 <the printed pid>')
    .option('--max-cycles <k>', 'stop after this many jobs', wholeNumberOption, 10)
    .option('--interval <duration>', 'periodic checkpoints that leave the program running (passed to each job, see ckpt-run --help)', durationOption)
    .option('--crash-at <seconds>', 'this long into the dry run, kill the running job whole with SIGKILL, once, as a node crash would; the next job resumes the last complete checkpoint', positive)
    .option('--preempt-at <seconds>', "this long into the dry run, preempt the running job, once, as OAR does a besteffort job: the checkpoint signal, then the kill after --preempt-grace; the next job resumes", positive)
    .option('--no-self-timed', 'each job waits for the signal alone (passed to each job, see ckpt-run --help)')
    .option('--dump-safety <factor>', 'passed to each job (see ckpt-run --help)', factorOption)
    .option('--preempt-grace <seconds>', 'how long a preempted job has before it is killed (oarsub --checkpoint)', secondsOption, 30)
    .addOption(new Option('--engine <engine>', 'how checkpoints are made (app: the program saves itself, as ckpt-run --engine app)').choices(ENGINE_REQUESTS).default('auto'))
    .addOption(new Option('--criu <path>', 'the criu command').env('CKPT_CRIU').default('criu'))
    .option('--json <file>', 'also write the summary as JSON')
    .option('--resume-timeout <seconds>', 'passed to each job', secondsOption, 120)
    .option('--dump-timeout <seconds>', 'passed to each job', secondsOption, 120)
    .option('-q, --quiet', "only the program's output, problems and the summary")
    .option('-v, --verbose', 'every step of the jobs and the daemon')
    .passThroughOptions()
    .addHelpText('after', HELP);
  return addEngineOptions(command).action(async (argv: string[], options: SimulateOptions) => {
    if (options.maxCycles < 1) throw new CliError('--max-cycles must be at least 1', ExitCode.Usage);
    const schedule = scheduleOf(options);
    const engines = dryRunEngines(options.engine);
    const given = givenIn(options);
    // The engine's options are checked here once, as each job would check them.
    chooseEngine(engines.job, given, { checkpointSignal: 'SIGUSR2', interval: options.interval !== undefined });
    const choice = engines.daemon && (await chooseDaemonEngine(engines.daemon, options.criu));
    if (choice?.notice) process.stderr.write(`\n${choice.notice}\n\n`);
    const engineName = choice?.engine.name ?? engines.job;
    process.stderr.write(`ckpt-run simulate: engine ${engineName}, ${describeSchedule(schedule)}, at most ${plural(options.maxCycles, 'cycle')}\n`);
    const launcherArgs = ['--resume-timeout', String(options.resumeTimeout), '--dump-timeout', String(options.dumpTimeout)];
    if (engines.job !== DEFAULT_ENGINE) launcherArgs.push('--engine', engines.job, ...engineArguments(engines.job, given));
    if (options.quiet) launcherArgs.push('--quiet');
    if (options.verbose) launcherArgs.push('--verbose');
    if (options.interval !== undefined) launcherArgs.push('--interval', String(options.interval));
    if (!options.selfTimed) launcherArgs.push('--no-self-timed');
    if (options.dumpSafety !== undefined) launcherArgs.push('--dump-safety', String(options.dumpSafety));
    // Each job then says how much of its walltime the dump leaves, as under OAR.
    if (schedule.kind === 'walltime') launcherArgs.push('--walltime', String(schedule.walltimeSec));
    // The embedded daemon's image key: this run's own, never stored (no /etc needed); only this
    // run's daemon restores what it dumps.
    const imageKey = randomBytes(IMAGE_KEY_BYTES);
    const summary = await simulate({
      argv,
      workdir: process.cwd(),
      schedule,
      maxCycles: options.maxCycles,
      engine: engineName,
      launcherArgs,
      crashAtSec: options.crashAt,
      preemptAtSec: options.preemptAt,
      preemptGraceSec: options.preemptGrace,
      // Where the jobs' engine needs no daemon, none runs: the jobs never write to the spool.
      startDaemon:
        choice &&
        (async (spoolDir, onEvent) => {
          const daemon = await startDaemon({ spoolDir, engine: choice.engine, logger: createLogger('ckpt-daemon', options.verbose ? 'debug' : 'warn'), imageKey, onEvent });
          return () => daemon.stop();
        }),
    });
    process.stdout.write(formatSummary(summary));
    if (options.json) writeFileSync(options.json, `${JSON.stringify(summary, null, 2)}\n`);
    process.exitCode = summary.exitCode;
  });
}
