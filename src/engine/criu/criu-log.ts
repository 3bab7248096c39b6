/**
 * Turns a failed CRIU run's log (-v4) into a one-line reason for the job side. CRIU logs the
 * root cause first and then its consequences ("Unable to open fd=3", "Restoring FAILED."), so
 * the reason is the first error; the last errors go along as context.
 */

/** `(00.028834)   1165: Error (criu/files-reg.c:2175): File x has bad size 19 (expect 14)` */
const ERROR_LINE = /\bError \([^)]*\):\s*(.*)$/;

/**
 * Errors that say nothing about the cause: logged on every run here, a closing summary, the
 * raw signal data criu logs before the line that says which process died and how, or the status
 * of a helper command criu ran, logged before criu says what the command was for ("exited,
 * status=127" then "Iptables configuration failed").
 */
const NOISE = [/^rlimit: Can't setup RLIMIT_NOFILE for self/, /^(Dumping|Restoring) FAILED\.?$/, /^si_code=\d+ si_pid=\d+ si_status=\d+$/, /^exited, status=\d+$/];

/**
 * Causes whose CRIU wording does not tell the user what to do, and what to add. A program started
 * by a plain `prog &` stays in its shell's session; where that session began outside the node's
 * PID namespace (session 0: the job runs under a container's init), criu refuses the dump even with
 * --shell-job. ckpt-run starts every program in a session of its own, so only other launchers meet it.
 */
const ADVICE: Array<[RegExp, string]> = [
  [/A session leader of .* is outside of its pid namespace/, 'the program is in a session begun outside this PID namespace: start it in a session of its own (setsid), as ckpt-run does'],
  [/^\d+ was killed by 9 unexpectedly/, 'a process of the tree was killed during the dump: its job ended (walltime) or someone killed it'],
  [/^Unable to create a thread: -17$/, 'a thread ID of the program is taken on this node'],
  [/^tty: Unable to open dev\/ptmx with specified index \d+$/, 'the program holds a pseudo-terminal (Open MPI gives one to each rank) and a restore needs the same number, taken on this node'],
];

function withAdvice(cause: string): string {
  const advice = ADVICE.find(([pattern]) => pattern.test(cause))?.[1];
  return advice ? `${cause} (${advice})` : cause;
}

/** A restore that failed because a PID of the tree is in use (or not reaped yet) on this node. */
const PID_IN_USE = /Can't fork for (\d+): File exists|clone.*File exists/;

/**
 * A restore that failed because a thread ID of the tree is in use: criu 4.2 creates each thread
 * with clone3 and its old TID, and EEXIST (-17) comes back without the TID. Seen when a job forked
 * right after another process took the tree's PID: its processes took the next IDs, the threads'.
 */
const THREAD_ID_IN_USE = /^Unable to create a thread: -17\b/;

/**
 * A restore that failed because the tree's pseudo-terminal number is in use on this node: criu
 * recreates a pty pair at its old index and cannot choose another (an Open MPI rank's stdout is
 * one; on a cluster node, another job or an ssh session may hold that number).
 */
const PTY_IN_USE = /^tty: Unable to open dev\/ptmx with specified index (\d+)\b/;

/** The pseudo-terminal number a restore found taken, if that is why it failed. */
export function busyPty(reason: string): number | undefined {
  const index = PTY_IN_USE.exec(reason)?.[1];
  return index === undefined ? undefined : Number(index);
}

/** The PID a restore found taken, if that is why it failed. */
export function busyPid(reason: string): number | undefined {
  const pid = PID_IN_USE.exec(reason)?.[1];
  return pid === undefined ? undefined : Number(pid);
}

/** Whether a restore failed because one of the tree's thread IDs is taken (criu does not say which). */
export function threadIdTaken(reason: string): boolean {
  return THREAD_ID_IN_USE.test(reason);
}

export interface CriuFailure {
  reason: string;
  retryable: boolean;
  log: string;
}

export function criuFailure(logText: string, fallback: string): CriuFailure {
  const errors = logText
    .split('\n')
    .map((line) => ERROR_LINE.exec(line)?.[1])
    .filter((message): message is string => message !== undefined);
  const causes = errors.filter((message) => !NOISE.some((pattern) => pattern.test(message)));
  return {
    reason: causes[0] === undefined ? fallback : withAdvice(causes[0]),
    retryable: causes.some((message) => [PID_IN_USE, THREAD_ID_IN_USE, PTY_IN_USE].some((pattern) => pattern.test(message))),
    log: errors.slice(-10).join('\n'),
  };
}
