/**
 * The two wrappers under test, started the way a batch job starts them, and what the bench
 * can see of a running one: its PID, stderr lines with their arrival time, its exit.
 *
 *   ckpt-run  node bin/ckpt-run --job-id J --run-id default --spool-dir S --min-runtime 0 -- bash PROGRAM STAMPS
 *             (env OAR_JOB_ID=J: an OAR job, which asks oarstat why it stops)
 *   baseline  bash ../shared/baseline/seed-job.sh bash PROGRAM STAMPS
 *             (env OAR_JOB_ID=J, CKPT_SPOOL_DIR=S, RESUME_TIMEOUT; output to a log file)
 * Both with an `oarstat` stand-in first on PATH that answers after OARSTAT_DELAY_SEC.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromEpochRealtime, now, sleep } from './clock.js';
import { catchesSignal, childrenOf, cmdline, killTree, peakRssMiB, readLink, treeOf } from './procfs.js';
import type { Daemon } from './daemon.js';
import { DirWatch, waitUntil } from './watch.js';

/** The package root: this module runs compiled, from build/bench/. */
export const ROOT = join(import.meta.dirname, '../..');
export const PROGRAM = join(ROOT, 'bench/program.sh');
export let CKPT_RUN = join(ROOT, 'bin/ckpt-run');
/** Measure another build of ckpt-run (e.g. a candidate fix in a copy of the project). */
export function useCkptRunBin(path: string): void {
  CKPT_RUN = path;
}
export const BASELINE = join(ROOT, '../shared/baseline/seed-job.sh');

/** How long the `oarstat` stand-in takes to answer: a loaded OAR server. */
export const OARSTAT_DELAY_SEC = 5;
/** PATH with the `oarstat` stand-in first (writeOarstatStandIn): both tools run as OAR jobs. */
let schedulerPath = process.env.PATH ?? '';

/**
 * Puts an `oarstat` into DIR that answers after OARSTAT_DELAY_SEC, as a loaded OAR server does,
 * that OAR's walltime watcher (sarko) asked for the checkpoint; both tools then run with it first on PATH.
 */
export function writeOarstatStandIn(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const answer = '{"%s": {"types": [], "events": [{"type": "CHECKPOINT", "description": "User oar (sarko) requested a checkpoint on the job %s", "date": 1, "event_id": 1}]}}';
  writeFileSync(join(dir, 'oarstat'), `#!/bin/bash\n# oarstat -J -f -j ID, answered late\nsleep ${OARSTAT_DELAY_SEC}\nid=\${@: -1}\nprintf '${answer}\\n' "$id" "$id"\n`, { mode: 0o755 });
  schedulerPath = `${dir}:${schedulerPath}`;
}

/** Every process tree the bench started, to be killed if anything is left at the end. */
const started = new Set<number>();

/** One stderr line of a wrapper, with its arrival time. */
export interface Line {
  at: number;
  text: string;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

/** What every figure works with: the sandbox, the spool (and the bench's watch on it), the daemon. */
export interface BenchContext {
  sandbox: string;
  spool: string;
  spoolWatch: DirWatch;
  daemon: Daemon;
}

/** What a run needs to start a wrapper. */
export interface RunSpec {
  jobId: string;
  workdir: string;
  spool: string;
  stamps: string;
}

/** One of the two wrappers under test. */
export interface Tool {
  name: string;
  /** Where the wrapper's run files are (checkpoint_ok, checkpoint/pidfile). */
  runDir(workdir: string): string;
  start(spec: RunSpec): Job;
  /** The moment the wrapper holds the restored PID (what is polled, every POLLMS ms). */
  resumed(job: Job, pollMs?: number): Promise<number>;
  /** Its exit code once a resumed program exited with 42. */
  expectedExitAfterResume: number;
}

export interface Stamp {
  at: number;
  pid: number;
}

export class Job {
  readonly pid: number;
  readonly lines: Line[] = [];
  stderr = '';
  peakRss: number | undefined;
  private lineWaiters: Array<(line: Line) => void> = [];
  readonly exited: Promise<Exit>;

  constructor(
    readonly tool: Tool,
    readonly jobId: string,
    readonly workdir: string,
    readonly child: ChildProcess,
    readonly spawnedAt: number,
  ) {
    this.pid = child.pid as number;
    started.add(this.pid);
    let partial = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      const at = now();
      this.stderr = (this.stderr + chunk.toString()).slice(-20_000);
      partial += chunk.toString();
      let newline;
      while ((newline = partial.indexOf('\n')) >= 0) {
        const line = { at, text: partial.slice(0, newline) };
        partial = partial.slice(newline + 1);
        this.lines.push(line);
        for (const waiter of [...this.lineWaiters]) waiter(line);
      }
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        started.delete(this.pid);
        resolve({ code, signal, at: now() });
      });
    });
  }

  /** Reads VmHWM now and keeps the highest value seen. */
  sampleRss(): number | undefined {
    const rss = peakRssMiB(this.pid);
    if (rss !== undefined && (this.peakRss === undefined || rss > this.peakRss)) this.peakRss = rss;
    return this.peakRss;
  }

  /** Resolves with the first stderr line (past or future) matching `pattern`, with its arrival time. */
  waitForLine(pattern: RegExp, timeoutMs = 15_000): Promise<Line> {
    const found = this.lines.find((line) => pattern.test(line.text));
    if (found) return Promise.resolve(found);
    return new Promise<Line>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.lineWaiters = this.lineWaiters.filter((w) => w !== waiter);
        reject(new Error(`${this.tool.name} ${this.jobId}: no line matching ${pattern} within ${timeoutMs} ms\n${this.stderr}`));
      }, timeoutMs);
      const waiter = (line: Line): void => {
        if (!pattern.test(line.text)) return;
        clearTimeout(timer);
        this.lineWaiters = this.lineWaiters.filter((w) => w !== waiter);
        resolve(line);
      };
      this.lineWaiters.push(waiter);
    });
  }

  async exit(timeoutMs = 15_000): Promise<Exit> {
    const result = await Promise.race([this.exited, sleep(timeoutMs).then(() => undefined)]);
    if (!result) throw new Error(`${this.tool.name} ${this.jobId}: did not exit within ${timeoutMs} ms\n${this.stderr}`);
    return result;
  }

  kill(): void {
    killTree(this.pid, 'SIGKILL');
  }
}

/** The program's stamp file: "start T PID" per (re)start, "exit T PID" when it ends. */
export function readStamps(file: string): { starts: Stamp[]; exits: Stamp[] } {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // not yet
  }
  const starts: Stamp[] = [];
  const exits: Stamp[] = [];
  for (const line of text.split('\n')) {
    const [kind, at, pid] = line.split(' ');
    if (kind === 'start' && pid) starts.push({ at: fromEpochRealtime(at), pid: Number(pid) });
    if (kind === 'exit' && pid) exits.push({ at: fromEpochRealtime(at), pid: Number(pid) });
  }
  return { starts, exits };
}

/** Waits until the program has started `count` times; returns that start {at, pid}. */
export function waitForStart(stampFile: string, count: number, timeoutMs = 15_000): Promise<Stamp> {
  return waitUntil(() => readStamps(stampFile).starts[count - 1], { timeoutMs, pollMs: 2, what: `start #${count} of the program (${stampFile})` });
}

/** Waits for the program's exit stamp number `index` (0-based): a restored copy keeps its old $pid. */
export function waitForProgramExit(stampFile: string, index: number, timeoutMs = 10_000): Promise<Stamp> {
  return waitUntil(() => readStamps(stampFile).exits[index], { timeoutMs, pollMs: 2, what: `the program's exit stamp (${stampFile})` });
}

/** true for the bench program's own bash (`bash PROGRAM STAMPS`), not a shim that runs it. */
function isProgram(pid: number): boolean {
  const argv = cmdline(pid);
  return argv !== undefined && /(^|\/)bash$/.test(argv[0]) && argv[1] === PROGRAM;
}

/** The bench program inside the tree rooted at `rootPid` (the root itself for the baseline). */
export function findProgram(rootPid: number): number | undefined {
  return treeOf(rootPid).find(isProgram);
}

/**
 * Ends a copy of the bench program with SIGTERM, after checking that PID really is one and
 * waiting until its trap is installed (a copy just restarted may not have run that line yet).
 */
export async function signalProgram(pid: number): Promise<void> {
  if (!isProgram(pid)) throw new Error(`PID ${pid} is not the bench program (${cmdline(pid)?.join(' ') ?? 'gone'})`);
  await waitUntil(() => catchesSignal(pid, 15) || undefined, { timeoutMs: 5000, pollMs: 2, what: `the program (PID ${pid}) to trap SIGTERM` });
  process.kill(pid, 'SIGTERM');
}

/**
 * Kills what is left of the runs under `sandbox`: copies of the bench program on its stamp
 * files, and anything working in its directories (e.g. a `sleep` a daemon's kill left behind).
 */
export function killStrays(sandbox: string): void {
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return;
  }
  for (const name of entries) {
    const pid = Number(name);
    if (pid === process.pid) continue;
    const argv = cmdline(pid);
    const cwd = readLink(`/proc/${pid}/cwd`);
    const ours = (argv && argv.includes(PROGRAM) && argv.some((arg) => arg.startsWith(sandbox))) || (cwd !== undefined && cwd.startsWith(`${sandbox}/`));
    if (ours) killTree(pid, 'SIGKILL');
  }
}

export const ckptRun: Tool = {
  name: 'ckpt-run',
  runDir: (workdir) => join(workdir, '.ckpt-run', 'default'),
  start({ jobId, workdir, spool, stamps }) {
    const spawnedAt = now();
    const child = spawn(
      process.execPath,
      // An OAR job (its oarstat slow: writeOarstatStandIn); the run folder named as without OAR.
      [CKPT_RUN, '--job-id', jobId, '--run-id', 'default', '--spool-dir', spool, '--min-runtime', '0', '--', 'bash', PROGRAM, stamps],
      {
        cwd: workdir,
        env: { ...process.env, OAR_JOB_ID: jobId, OAR_ARRAY_ID: '', OAR_ARRAY_INDEX: '', CKPT_SPOOL_DIR: '', PATH: schedulerPath },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    return new Job(ckptRun, jobId, workdir, child, spawnedAt);
  },
  /** The moment ckpt-run holds the restored PID: its log line "program restored as PID N". */
  async resumed(job) {
    return (await job.waitForLine(/program restored as PID/)).at;
  },
  expectedExitAfterResume: 42,
};

export const baseline: Tool = {
  name: 'baseline',
  runDir: (workdir) => workdir,
  start({ jobId, workdir, spool, stamps }) {
    const log = openSync(join(workdir, 'job.log'), 'a');
    const spawnedAt = now();
    // A session of its own, as a job's shell has: its `nohup prog &` stays in that session, and
    // criu refuses to dump a tree whose session began outside its PID namespace (the bench's own,
    // when it runs under a container's init).
    const child = spawn('bash', [BASELINE, 'bash', PROGRAM, stamps], {
      detached: true,
      cwd: workdir,
      env: { ...process.env, OAR_JOB_ID: jobId, CKPT_SPOOL_DIR: spool, RESUME_TIMEOUT: '120', PATH: schedulerPath },
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    return new Job(baseline, jobId, workdir, child, spawnedAt);
  },
  /**
   * The moment the script holds the restored PID: after the pidfile, it sleeps 5 s and then
   * reads it. Seen from outside as the end of its `sleep 5` child (polled every pollMs).
   */
  async resumed(job, pollMs = 5) {
    const isSleep5 = (pid: number): boolean => {
      const argv = cmdline(pid);
      return argv !== undefined && argv[0] === 'sleep' && argv[1] === '5';
    };
    const pidfile = join(job.workdir, 'checkpoint', 'pidfile');
    await waitUntil(() => existsSync(pidfile) || undefined, { timeoutMs: 60_000, pollMs: 50, what: 'the pidfile' });
    const sleeper = await waitUntil(() => childrenOf(job.pid).find(isSleep5), { timeoutMs: 10_000, pollMs, what: 'the baseline\'s "sleep 5"' });
    await waitUntil(() => !childrenOf(job.pid).includes(sleeper) || undefined, { timeoutMs: 15_000, pollMs, what: 'the end of "sleep 5"' });
    return now();
  },
  expectedExitAfterResume: 99,
};

export function baselinePresent(): boolean {
  return existsSync(BASELINE);
}

/** A fresh working directory and stamp file for one run. */
export interface Run {
  name: string;
  workdir: string;
  stamps: string;
}

export function makeRun(sandbox: string, name: string): Run {
  const workdir = join(sandbox, 'work', name);
  mkdirSync(workdir, { recursive: true });
  return { name, workdir, stamps: join(sandbox, 'stamps', `${name}.log`) };
}

export function runDirWatch(tool: Tool, workdir: string): DirWatch {
  return new DirWatch(tool.runDir(workdir), { requireExists: true });
}

/** Kills whatever the bench started that is still alive. */
export function killAllStarted(): void {
  for (const pid of started) killTree(pid, 'SIGKILL');
}
