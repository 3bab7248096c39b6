/**
 * The CRIU engine. Options, and why:
 *  - no --shell-job for trees whose root leads its own session (ckpt-run starts programs that
 *    way): the restored tree then gets a session of its own. A root that is not a session
 *    leader (a job script's `nohup prog &`) needs --shell-job at dump and restore; the dump
 *    leaves a marker file in the images so that the restore knows.
 *  - --tcp-established at dump AND restore: a program's TCP connections come back established.
 *    MPI needs it: under `mpirun` each rank holds a TCP connection to the PMIx server in mpirun
 *    (127.0.0.1); restored closed (--tcp-close, the option before), the rank's
 *    PMIx client takes the lost server as fatal and the rank exits 195 (PMIX_ERR_LOST_CONNECTION,
 *    -61) right after the restore. --tcp-close at dump too is worse: the killed tree's connections
 *    close normally and leave TIME_WAIT sockets (seen), and where one holds the port of mpirun's
 *    listener the restore fails ("Can't bind inet socket: Address already in use", seen once in
 *    two); a tree dumped with --tcp-established is killed with its sockets in repair mode, silently. A tree that holds TCP
 *    sockets gets --network-lock nftables at dump and restore (a marker file in the images tells
 *    the restore): criu's default lock (iptables) needs the iptables command, absent on many
 *    nodes ("Iptables configuration failed ... status=127"); nftables needs only the kernel and
 *    the libnftables criu links, but costs ~1 s of each dump and restore here even with no
 *    connection, so trees without TCP sockets go without it, as before.
 *    A connection comes back with its own local address: loopback ones (all of a one-node MPI
 *    job's) restore anywhere; one bound to an address the restoring node lacks (the first node's
 *    own IP) fails the restore ("Can't bind inet socket back: Cannot assign requested
 *    address"), which is then tried again with --tcp-close: such connections come back closed,
 *    as on a new node they must.
 *  - --file-locks: without it criu refuses to dump a tree holding a file lock ("Some file locks
 *    are hold by dumping tasks"), and HPC programs hold them: HDF5 locks the files it opens,
 *    SQLite its database. The restored tree holds its locks again; a lock another process took
 *    meanwhile fails the restore, as it must.
 *  - -v4 -o LOG: the failure reason is taken from the log (criu-log.ts).
 *  - --link-remap: a file the tree shares (a mapping, or descriptors in several processes) whose
 *    name was deleted while another name remains (glibc's sem_open links /dev/shm/sem.NAME to a
 *    temporary name it then deletes: every POSIX semaphore, e.g. Python multiprocessing's) cannot
 *    be dumped without it ("Can't create link remap ... Use link-remap option"). criu gives the
 *    file a second name (link_remap.N, in its folder) that the restore opens and removes; in a
 *    node-local folder that name travels with the node-local state (below).
 *  - the program's node-local state (protocol/local-state.ts): the action script archives, as the
 *    user and while the tree is frozen, what the tree holds in /tmp, /var/tmp, /dev/shm and its
 *    tmpfs TMPDIR (bounded by localStateLimit, all or nothing), then what the user made there since
 *    the program started (createdSince; one archive after the other in the same file), and the
 *    restore first extracts it as the user, keeping what is already there (the same node) and its
 *    owner and modes.
 *  - the node's CPU features go with the images (protocol/cpu-features.ts): ckpt-run refuses to
 *    resume them on a CPU that lacks any, before the restore (criu's own check is the FPU's only).
 *  - --leave-running for a periodic checkpoint (ckpt-run --interval): the tree runs on once
 *    dumped. Without soft-dirty tracking (not on every kernel) each one writes all the memory.
 *  - restore -d (detached) with -W in the daemon's private scratch folder, so that criu writes
 *    its log, pidfile and statistics there and never into a folder that the user controls.
 *  - --action-script: before the restored tree runs, scripts/criu-pre-resume-check.sh moves it
 *    into the new job's cgroups, checks every restored process against the requester and kills
 *    the tree otherwise. The same script
 *    records the files the tree holds open for writing, with their sizes, while it is frozen
 *    ("post-dump": the job rolls them back to those sizes before a resume, protocol/open-files.ts), and
 *    checks the dumped tree once criu has frozen it: the daemon checked the tree
 *    before, but a process may have changed since (run a setuid program, or a new PID holder),
 *    and only a frozen tree is the one in the images. Refused, criu resumes it and fails.
 *  - a restore that finds a PID of the tree taken waits for that PID to leave /proc and tries
 *    again, for PID_WAIT_MS in all: right after a dump, the dumped processes linger as zombies
 *    until init reaps them, slowly on some nodes ("Can't fork for N: File exists"). A thread ID
 *    taken ("Unable to create a thread: -17", no ID named) waits the same way for the thread IDs
 *    of the images that /proc shows, and the last failure names their holders. The deadline
 *    bounds the tries themselves, since criu may name a PID that /proc does not show (seen under
 *    a nested PID namespace whose init never reaps).
 *  - every criu run has a deadline (the daemon's --criu-deadline, or sooner when the job must
 *    have an answer sooner: its walltime, its --dump-timeout). A criu past it is killed where the
 *    tree can go on (criu-stage.ts: not while a parasite is inside a task, given a grace to get
 *    out), the tree is checked to run again (a killed tracer releases it; a task left stopped
 *    gets SIGCONT), and the failure says at which stage and in what state the program is.
 *    A dump that stalled at the breakpoint step turns breakpoints off for every later call.
 *  - CriuSettings (criu-probe.ts): breakpoints off (CRIU_FAULT=130) and the nftables network
 *    lock where the node lacks iptables-restore (see --tcp-established above for when).
 */
import { execa, type ResultPromise } from 'execa';
import { appendFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { asUserArgv } from '../../proc/as-user.js';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasEnded, killAll, processState, readOrEmpty, readStat, sleep, treeOf } from '../../proc/processes.js';
import { treeHoldsTcp, treeNodeSockets } from '../../proc/tcp-sockets.js';
import { CPU_FEATURES_IMAGE, cpuOf, formatCpuRecord } from '../../protocol/cpu-features.js';
import { DEFAULT_LOCAL_STATE_LIMIT, LOCAL_STATE_ARCHIVE, LOCAL_STATE_IMAGE, parseLocalState, type LocalState } from '../../protocol/local-state.js';
import { KEPT_DATA_IMAGE, KEPT_INDEX_IMAGE, parseKeptIndex } from '../../protocol/kept-files.js';
import { OPEN_FILES_IMAGE } from '../../protocol/run-dir.js';
import type { Requester } from '../../protocol/spool-request.js';
import { criuFailure } from './criu-log.js';
import { stillTaken, takenPaths, vanish } from './criu-pids.js';
import { criuMode, type CriuSettings } from './criu-probe.js';
import { dumpProgress, safeToKill, stalledAtBreakpoint } from './criu-stage.js';
import { frozenMsOf } from './criu-stats.js';
import {
  EngineError,
  RESTORED_CGROUPS_FILE,
  type CheckpointEngine,
  type DumpFigures,
  type DumpTarget,
  type ProgramAfterFailure,
  type RestoredTree,
  type RestoreTarget,
} from '../engine.js';
import { LazyPagesServer } from './lazy-pages.js';

/** Resolved from this module, so that both src/ (tests) and dist/ (the package) find it. */
export const PRE_RESUME_CHECK = fileURLToPath(new URL('../../../scripts/criu-pre-resume-check.sh', import.meta.url));

/** The keep tool (engine/keep-files.ts), run by the action script. */
const KEEP_TOOL = fileURLToPath(new URL('./keep-files-tool.js', import.meta.url));

/** The content of open files a checkpoint keeps at most by default: the bases and changed blocks it writes. */
export const DEFAULT_KEEP_FILES_MAX = 4 * 2 ** 30;

/** criu's own figures of a dump, written beside its images. */
const STATS_IMAGE = 'stats-dump';
/** Left in the images by a dump that needed --shell-job; the restore needs it too. */
const SHELL_JOB_MARKER = 'ckpt-daemon-shell-job';
/** Left in the images by a dump of a tree holding TCP sockets; the restore locks the same way. */
const TCP_MARKER = 'ckpt-daemon-tcp';
/** Why a restore with a connection established fails where its local address is not: then --tcp-close. */
const ADDRESS_NOT_HERE = /Can't bind inet socket back: Cannot assign requested address/;

/** How long a restore waits for the PIDs it needs to be reaped, tries included. */
const PID_WAIT_MS = 10_000;

/** The daemon's default bound on one criu run (ckpt-daemon --criu-deadline). */
export const DEFAULT_CRIU_DEADLINE_MS = 10 * 60_000;
/** Past its deadline, a criu with a parasite inside a task gets this long to take it out. */
const PARASITE_GRACE_MS = 10_000;
/** After criu is killed, how long the tree may take to show it runs again. */
const RELEASE_WAIT_MS = 3000;
const POLL_MS = 50;

/** criu logs a failing pre-resume script and carries on; the script kills the tree, but be sure. */
const PRE_RESUME_FAILED = 'Pre-resume script ret code';

function leadsItsSession(pid: number): boolean {
  const stat = readStat(pid);
  if (!stat) throw new EngineError(`no process ${pid} on this node`, false);
  return stat.session === pid;
}

/** Whom the action script checks the tree against. */
function requesterEnv(requester: Requester): Record<string, string> {
  return {
    CKPT_REQUESTER_UID: String(requester.uid),
    CKPT_REQUESTER_GIDS: requester.gids.join(' '),
    CKPT_REQUESTER_NAME: requester.name,
  };
}

/** Stopped (T) or traced (t): the program does not run. */
const isHeld = (state: string | undefined): boolean => state === 'T' || state === 't';

/**
 * After criu was killed mid-dump: waits (bounded) for the dumped tree to run again and says how
 * it is. A task criu left group-stopped that was running before the dump is continued.
 */
async function releasedTree(before: Map<number, string | undefined>): Promise<ProgramAfterFailure> {
  const deadline = Date.now() + RELEASE_WAIT_MS;
  for (;;) {
    const held = [...before].filter(([pid, was]) => isHeld(processState(pid)) && !isHeld(was)).map(([pid]) => pid);
    for (const pid of held) if (processState(pid) === 'T') process.kill(pid, 'SIGCONT');
    const [root] = before.keys();
    if (hasEnded(root)) return 'gone';
    if (held.length === 0) return 'running';
    if (Date.now() > deadline) return 'frozen';
    await sleep(POLL_MS);
  }
}

const PROGRAM_WORDS: Record<ProgramAfterFailure, string> = {
  running: 'the program runs on',
  frozen: 'the program is still FROZEN (stopped): it may need a kill -CONT by hand',
  gone: 'the program is gone',
};

export interface CriuEngineOptions {
  settings?: CriuSettings;
  /** The bound on one criu run when the request gives no sooner one. */
  deadlineMs?: number;
  pidWaitMs?: number;
  /** The bound on the content of open files kept per checkpoint (protocol/kept-files.ts), in bytes. */
  keepFilesMax?: number;
  /** Told once when the engine changes how it runs criu (breakpoints turned off). */
  notice?: (message: string) => void;
  /** The most node-local state one checkpoint carries, bytes (ckpt-daemon --local-state-limit). */
  localStateLimit?: number;
}

/**
 * Puts the node-local state archived in IMAGESDIR back, as the requester (tar never writes
 * where the user may not, nor as another owner), keeping what is there (a resume on the same node).
 */
async function putBackLocalState(imagesDir: string, requester: Requester, deadline: number): Promise<LocalState | undefined> {
  const archive = join(imagesDir, LOCAL_STATE_ARCHIVE);
  if (!existsSync(archive)) return undefined;
  // Read by the daemon and given on stdin: the user cannot read the daemon's private copy.
  // --ignore-zeros: the created entries' archives follow the held ones' (each ends with zeros).
  const [file, ...args] = asUserArgv(requester, ['tar', '-C', '/', '--skip-old-files', '--ignore-zeros', '-xpf', '-']);
  const result = await execa(file, args, { inputFile: archive, reject: false, timeout: Math.max(1, deadline - Date.now()), killSignal: 'SIGKILL' });
  if (result.exitCode !== 0) {
    const why = result.timedOut ? 'tar ran past the deadline' : `${result.stderr}`.trim().split('\n')[0];
    throw new EngineError(`cannot put back the program's node-local files (${why})`, false);
  }
  return parseLocalState(readOrEmpty(join(imagesDir, LOCAL_STATE_IMAGE)));
}

export class CriuEngine implements CheckpointEngine {
  readonly name = 'criu';
  private settings: CriuSettings;
  private readonly deadlineMs: number;
  private readonly pidWaitMs: number;

  /** What one dump carries of the program's node-local state at most; the daemon's room check counts it. */
  get localStateLimit(): number {
    return this.options.localStateLimit ?? DEFAULT_LOCAL_STATE_LIMIT;
  }

  constructor(
    private readonly criu: string,
    private readonly options: CriuEngineOptions = {},
  ) {
    this.settings = { ...(options.settings ?? { breakpoints: 'on', networkLock: 'iptables' }) };
    this.deadlineMs = options.deadlineMs ?? DEFAULT_CRIU_DEADLINE_MS;
    this.pidWaitMs = options.pidWaitMs ?? PID_WAIT_MS;
  }

  async dump({ pid, imagesDir, requester, deadline, leaveRunning, runDir, createdSince }: DumpTarget): Promise<DumpFigures> {
    // The CPU the program chose its code for: a job on a node without it refuses to resume (protocol/cpu-features.ts).
    writeFileSync(join(imagesDir, CPU_FEATURES_IMAGE), formatCpuRecord(cpuOf(readFileSync('/proc/cpuinfo', 'utf8'), hostname())));
    const shellJob = !leadsItsSession(pid);
    if (shellJob) writeFileSync(join(imagesDir, SHELL_JOB_MARKER), '');
    const tcp = treeHoldsTcp(pid);
    // Before the dump (which ends the tree): said with the node-local state, as what cannot travel.
    const nodeSockets = treeNodeSockets(pid);
    if (tcp) writeFileSync(join(imagesDir, TCP_MARKER), '');
    const args = ['dump', '-t', String(pid), '-D', imagesDir, '-o', 'dump.log', '-v4', '--tcp-established', '--file-locks', '--action-script', PRE_RESUME_CHECK];
    // A file open under a name since removed while other names still link to it: criu keeps it
    // with a hard link of its own next to it (restore reopens and removes it) instead of
    // refusing the dump ("Can't create link remap … Use link-remap option"; zdtm's unlink_fstat03).
    args.push('--link-remap');
    if (shellJob) args.push('--shell-job');
    if (leaveRunning) args.push('--leave-running');
    const before = new Map(treeOf(pid).map((member) => [member, processState(member)]));
    // The action script records the files open for writing while the tree is frozen (protocol/open-files.ts),
    // archives the node-local state (protocol/local-state.ts) and keeps the content of the files
    // open for writing (protocol/kept-files.ts), both as the user.
    const env = {
      ...requesterEnv(requester),
      CKPT_OPEN_FILES: join(imagesDir, OPEN_FILES_IMAGE),
      CKPT_LOCAL_STATE: join(imagesDir, LOCAL_STATE_IMAGE),
      CKPT_LOCAL_LIMIT: String(this.localStateLimit),
      // find's -newerct @SECONDS: to the nanosecond, as createdEntries compares.
      CKPT_LOCAL_SINCE: createdSince === undefined ? '' : (createdSince / 1000).toFixed(3),
      CKPT_AS_USER: asUserArgv(requester, []).join(' '),
      CKPT_RUN_DIR: runDir ?? '',
      ...(runDir ? this.keepEnv(imagesDir) : {}),
    };
    await this.run(args, join(imagesDir, 'dump.log'), env, this.deadlineOf(deadline), {
      locksNetwork: tcp,
      onDeadline: (child) => this.stopDump(child, join(imagesDir, 'dump.log'), before),
    });
    const stats = join(imagesDir, STATS_IMAGE);
    const local = join(imagesDir, LOCAL_STATE_IMAGE);
    if (nodeSockets.length > 0) appendFileSync(local, nodeSockets.map((socket) => `socket ${socket}\n`).join(''));
    const kept = runDir ? parseKeptIndex(readOrEmpty(join(imagesDir, KEPT_INDEX_IMAGE))) : undefined;
    return {
      frozenMs: existsSync(stats) ? frozenMsOf(readFileSync(stats)) : undefined,
      localState: existsSync(local) ? parseLocalState(readFileSync(local, 'utf8')) : undefined,
      ...(kept ? { kept } : {}),
    };
  }

  /** The action script's settings for the keep tool, which it runs as the requester (CKPT_AS_USER). */
  private keepEnv(imagesDir: string): Record<string, string> {
    return {
      CKPT_KEEP_FILES: join(imagesDir, KEPT_INDEX_IMAGE),
      CKPT_KEEP_DATA: join(imagesDir, KEPT_DATA_IMAGE),
      CKPT_KEEP_NODE: process.execPath,
      CKPT_KEEP_TOOL: KEEP_TOOL,
      CKPT_KEEP_MAX: String(this.options.keepFilesMax ?? DEFAULT_KEEP_FILES_MAX),
    };
  }

  async restore(target: RestoreTarget): Promise<RestoredTree> {
    const localState = await putBackLocalState(target.imagesDir, target.requester, this.deadlineOf(target.deadline));
    const deadline = Date.now() + this.pidWaitMs;
    let tcp = '--tcp-established';
    for (;;) {
      try {
        return { ...(await this.restoreOnce(target, tcp)), localState };
      } catch (error) {
        if (tcp === '--tcp-established' && error instanceof EngineError && ADDRESS_NOT_HERE.test(error.reason)) {
          tcp = '--tcp-close';
          continue;
        }
        const taken = error instanceof EngineError ? takenPaths(error.reason, target.imagesDir) : undefined;
        if (taken === undefined) throw error;
        if (!(await vanish(taken, deadline))) throw stillTaken(error as EngineError, target.imagesDir);
      }
    }
  }

  private deadlineOf(requested: number | undefined): number {
    const own = Date.now() + this.deadlineMs;
    return requested === undefined ? own : Math.min(own, requested);
  }

  private async restoreOnce({ imagesDir, scratchDir, requester, jobCgroups = [], deadline }: RestoreTarget, tcp: string): Promise<RestoredTree> {
    const pidfile = join(scratchDir, 'pidfile');
    const logFile = join(scratchDir, 'restore.log');
    rmSync(logFile, { force: true }); // an earlier try's errors are not this one's
    const args = ['restore', '-d', '-D', imagesDir, '-W', scratchDir, '-o', 'restore.log', '-v4'];
    args.push('--pidfile', pidfile, tcp, '--file-locks', '--action-script', PRE_RESUME_CHECK);
    if (existsSync(join(imagesDir, SHELL_JOB_MARKER))) args.push('--shell-job');
    const env = { ...requesterEnv(requester), CKPT_JOB_CGROUPS: jobCgroups.join(' '), CKPT_RESTORED_CGROUPS: join(scratchDir, RESTORED_CGROUPS_FILE) };
    const until = this.deadlineOf(deadline);
    const server = this.settings.lazyPages ? await LazyPagesServer.start(this.criu, imagesDir, scratchDir, criuMode(this.settings, false).env) : undefined;
    try {
      await this.run(server ? [...args, '--lazy-pages'] : args, logFile, env, until, {
        locksNetwork: existsSync(join(imagesDir, TCP_MARKER)),
        onDeadline: (child) => this.stopRestore(child),
      });
    } catch (error) {
      server?.stop();
      throw error;
    }
    const pid = Number(readFileSync(pidfile, 'utf8').trim());
    // The transfer has the whole deadline of the restore, not what the restore left of it.
    return server ? { pid, pagesIn: server.transfer(pid, this.deadlineOf(undefined)) } : { pid };
  }

  /**
   * Past the deadline of a dump: waits (bounded) for any parasite to leave, kills criu, and says
   * where it was and how the program is. A stall at the breakpoint step turns breakpoints off.
   */
  private async stopDump(child: ResultPromise, logFile: string, before: Map<number, string | undefined>): Promise<EngineError> {
    const graceEnd = Date.now() + PARASITE_GRACE_MS;
    let progress = dumpProgress(readOrEmpty(logFile));
    while (!safeToKill(progress.stage) && Date.now() < graceEnd && child.exitCode === null) {
      await sleep(POLL_MS);
      progress = dumpProgress(readOrEmpty(logFile));
    }
    await killGroup(child);
    const program = await releasedTree(before);
    let reason = `criu dump ran past its deadline and was killed at the "${progress.stage}" stage (last log line: ${progress.lastLine || 'none'}); ${PROGRAM_WORDS[program]}`;
    if (stalledAtBreakpoint(progress) && this.settings.breakpoints === 'on') {
      this.settings = { ...this.settings, breakpoints: 'off' };
      const notice = 'hardware breakpoints do not trap on this node (criu stalled at the breakpoint step): criu runs without them from now on (CRIU_FAULT=130)';
      this.options.notice?.(notice);
      reason += `; ${notice}: the next checkpoint signal tries again`;
    }
    return new EngineError(reason, true, progress.lastLine, program);
  }

  /** Past the deadline of a restore: the half-restored tree (criu's children) goes with criu. */
  private async stopRestore(child: ResultPromise): Promise<EngineError> {
    const restored = child.pid === undefined ? [] : treeOf(child.pid).slice(1);
    killAll(restored, 'SIGKILL');
    await killGroup(child);
    return new EngineError(`criu restore ran past its deadline and was killed with the ${restored.length} process(es) it had restored; the checkpoint is kept`, true);
  }

  private async run(
    args: string[],
    logFile: string,
    env: Record<string, string>,
    deadline: number,
    { locksNetwork, onDeadline }: { locksNetwork: boolean; onDeadline: (child: ResultPromise) => Promise<EngineError> },
  ): Promise<void> {
    const mode = criuMode(this.settings, locksNetwork);
    // Its own session: a --shell-job restore puts the tree in criu's session, not the daemon's;
    // and a process group to kill at the deadline.
    const child = execa(this.criu, [...args, ...mode.args], { reject: false, stdin: 'ignore', detached: true, env: { ...env, ...mode.env } });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), Math.max(0, deadline - Date.now()));
    });
    const result = await Promise.race([child, late]).finally(() => clearTimeout(timer));
    if (result === 'late') throw await onDeadline(child);
    const logText = readOrEmpty(logFile); // empty when criu stopped before opening its log: its stderr says why
    if (result.exitCode === 0 && !logText.includes(PRE_RESUME_FAILED)) return;
    const said = `${result.stderr}`.trim().split('\n').pop();
    const failure = criuFailure(logText, said || `${this.criu} ${args[0]} failed: ${result.shortMessage}`);
    throw new EngineError(failure.reason, failure.retryable, failure.log);
  }
}


/** Kills criu and whatever it started (its action script) and waits for it to be reaped. */
async function killGroup(child: ResultPromise): Promise<void> {
  if (child.pid !== undefined) killAll([-child.pid], 'SIGKILL');
  await child;
}
