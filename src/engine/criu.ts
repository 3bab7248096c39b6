/**
 * The CRIU engine. Options, and why:
 *  - no --shell-job for trees whose root leads its own session (ckpt-run starts programs that
 *    way): the restored tree then gets a session of its own. A root that is not a session
 *    leader (a job script's `nohup prog &`) needs --shell-job at dump and restore; the dump
 *    leaves a marker file in the images so that the restore knows.
 *  - --tcp-established / --tcp-close: a program with TCP connections can still be dumped; it
 *    finds them closed after the restore, as a program on a new node must.
 *  - --file-locks: without it criu refuses to dump a tree holding a file lock ("Some file locks
 *    are hold by dumping tasks"), and HPC programs hold them: HDF5 locks the files it opens,
 *    SQLite its database. The restored tree holds its locks again; a lock another process took
 *    meanwhile fails the restore, as it must.
 *  - -v4 -o LOG: the failure reason is taken from the log (criu-log.ts).
 *  - restore -d (detached) with -W in the daemon's private scratch folder, so that criu writes
 *    its log, pidfile and statistics there and never into a folder that the user controls.
 *  - --action-script: before the restored tree runs, scripts/criu-pre-resume-check.sh moves it
 *    into the new job's cgroups, checks every restored process against the requester and kills
 *    the tree otherwise. The same script
 *    checks the dumped tree once criu has frozen it ("post-dump"): the daemon checked the tree
 *    before, but a process may have changed since (run a setuid program, or a new PID holder),
 *    and only a frozen tree is the one in the images. Refused, criu resumes it and fails.
 *  - a restore that finds a PID of the tree taken waits for that PID to leave /proc and tries
 *    again, for PID_WAIT_MS in all: right after a dump, the dumped processes linger as zombies
 *    until init reaps them, slowly on some nodes ("Can't fork for N: File exists"). The deadline
 *    bounds the tries themselves, since criu may name a PID that /proc does not show (seen under
 *    a nested PID namespace whose init never reaps).
 * criu is never killed on a timeout: a dump cut short could leave the program frozen.
 */
import { execa } from 'execa';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readStat, sleep } from '../proc/processes.js';
import type { Requester } from '../protocol/spool-request.js';
import { busyPid, criuFailure } from './criu-log.js';
import { EngineError, RESTORED_CGROUPS_FILE, type CheckpointEngine, type DumpTarget, type RestoreTarget } from './engine.js';

/** Resolved from this module, so that both src/ (tests) and dist/ (the package) find it. */
export const PRE_RESUME_CHECK = fileURLToPath(new URL('../../scripts/criu-pre-resume-check.sh', import.meta.url));

/** Left in the images by a dump that needed --shell-job; the restore needs it too. */
const SHELL_JOB_MARKER = 'ckpt-daemon-shell-job';

/** How long a restore waits for the PIDs it needs to be reaped, tries included. */
const PID_WAIT_MS = 10_000;
/** Between two tries: criu's PID may be taken while /proc does not show it. */
const RETRY_PAUSE_MS = 50;

/** criu logs a failing pre-resume script and carries on; the script kills the tree, but be sure. */
const PRE_RESUME_FAILED = 'Pre-resume script ret code';

function leadsItsSession(pid: number): boolean {
  const stat = readStat(pid);
  if (!stat) throw new EngineError(`no process ${pid} on this node`, false);
  return stat.session === pid;
}

/** Waits until PID is gone from /proc (a zombie still holds it); false at the deadline. */
async function vanishes(pid: number, deadline: number): Promise<boolean> {
  do {
    await sleep(RETRY_PAUSE_MS);
    if (Date.now() > deadline) return false;
  } while (existsSync(`/proc/${pid}`));
  return true;
}

/** Whom the action script checks the tree against. */
function requesterEnv(requester: Requester): Record<string, string> {
  return {
    CKPT_REQUESTER_UID: String(requester.uid),
    CKPT_REQUESTER_GIDS: requester.gids.join(' '),
    CKPT_REQUESTER_NAME: requester.name,
  };
}

export class CriuEngine implements CheckpointEngine {
  readonly name = 'criu';

  constructor(
    private readonly criu: string,
    private readonly pidWaitMs = PID_WAIT_MS,
  ) {}

  async dump({ pid, imagesDir, requester }: DumpTarget): Promise<void> {
    const shellJob = !leadsItsSession(pid);
    if (shellJob) writeFileSync(join(imagesDir, SHELL_JOB_MARKER), '');
    const args = ['dump', '-t', String(pid), '-D', imagesDir, '-o', 'dump.log', '-v4', '--tcp-established', '--file-locks', '--action-script', PRE_RESUME_CHECK];
    await this.run([...args, ...(shellJob ? ['--shell-job'] : [])], join(imagesDir, 'dump.log'), requesterEnv(requester));
  }

  async restore(target: RestoreTarget): Promise<number> {
    const deadline = Date.now() + this.pidWaitMs;
    for (;;) {
      try {
        return await this.restoreOnce(target);
      } catch (error) {
        const pid = error instanceof EngineError ? busyPid(error.reason) : undefined;
        if (pid === undefined || !(await vanishes(pid, deadline))) throw error;
      }
    }
  }

  private async restoreOnce({ imagesDir, scratchDir, requester, jobCgroups = [] }: RestoreTarget): Promise<number> {
    const pidfile = join(scratchDir, 'pidfile');
    const logFile = join(scratchDir, 'restore.log');
    rmSync(logFile, { force: true }); // an earlier try's errors are not this one's
    const args = ['restore', '-d', '-D', imagesDir, '-W', scratchDir, '-o', 'restore.log', '-v4'];
    args.push('--pidfile', pidfile, '--tcp-close', '--file-locks', '--action-script', PRE_RESUME_CHECK);
    if (existsSync(join(imagesDir, SHELL_JOB_MARKER))) args.push('--shell-job');
    await this.run(args, logFile, {
      ...requesterEnv(requester),
      CKPT_JOB_CGROUPS: jobCgroups.join(' '),
      CKPT_RESTORED_CGROUPS: join(scratchDir, RESTORED_CGROUPS_FILE),
    });
    return Number(readFileSync(pidfile, 'utf8').trim());
  }

  private async run(args: string[], logFile: string, env: Record<string, string>): Promise<void> {
    // Its own session: a --shell-job restore puts the tree in criu's session, not the daemon's.
    const result = await execa(this.criu, args, { reject: false, stdin: 'ignore', detached: true, env });
    let logText = '';
    try {
      logText = readFileSync(logFile, 'utf8');
    } catch {
      // criu stopped before opening its log: its stderr says why
    }
    if (result.exitCode === 0 && !logText.includes(PRE_RESUME_FAILED)) return;
    const said = `${result.stderr}`.trim().split('\n').pop();
    const failure = criuFailure(logText, said || `${this.criu} ${args[0]} failed: ${result.shortMessage}`);
    throw new EngineError(failure.reason, failure.retryable, failure.log);
  }
}
