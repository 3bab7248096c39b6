/**
 * Where a criu dump stands, read from its -v4 log: what a kill of criu at that moment leaves.
 * criu seizes the tree (ptrace: the tasks stop), puts a parasite into each task in turn, drives it
 * over a socket to collect the task's state, then "cures" the task: the parasite returns through
 * rt_sigreturn, which criu catches with a hardware breakpoint (or, where breakpoints are off, by
 * stepping syscalls). A cured task is only traced: when its tracer dies the kernel detaches it and
 * it runs on. A task with a parasite in it runs foreign code until the parasite is told to leave:
 * that is the one stage at which killing criu may leave the program damaged.
 * On nodes whose hypervisor never delivers the breakpoint (seen on Firecracker VMs), criu 4.1.1
 * waits at the cure for ever: the log then ends with "Waiting for N to trap", "Daemon N exited
 * trapping", "Sent msg to daemon 3 0 0" and the parasite's "pie: N: N: new_sp=..." line.
 */

export type DumpStage =
  /** criu has not stopped any task yet. */
  | 'starting'
  /** Tasks are seized (stopped, traced); no parasite in any. */
  | 'seized'
  /** A parasite is inside a task: killing criu now may leave that task running the parasite. */
  | 'parasite'
  /** The parasite was told to leave; criu waits for the task to trap at its rt_sigreturn. */
  | 'curing'
  /** Every parasite is out: the tree is only traced while criu writes the images. */
  | 'traced'
  /** criu wrote every image; the tree is being killed (dump) or released. */
  | 'finished';

export interface DumpProgress {
  stage: DumpStage;
  /** The last line of criu's own (not the parasite's "pie:") log, for the reason. */
  lastLine: string;
}

const STAGE_MARKS: Array<[RegExp, DumpStage]> = [
  [/Dumping finished successfully|Running post-dump scripts/, 'finished'],
  [/\d+ was stopped$/, 'traced'],
  [/Waiting for \d+ to trap|Daemon \d+ exited trapping/, 'curing'],
  [/Putting parasite blob|Parasite \d+ has been switched to daemon mode/, 'parasite'],
  [/Seized task \d+/, 'seized'],
];

export function dumpProgress(logText: string): DumpProgress {
  let stage: DumpStage = 'starting';
  let lastLine = '';
  for (const line of logText.split('\n')) {
    if (line === '' || line.startsWith('pie:')) continue;
    lastLine = line.trim();
    const mark = STAGE_MARKS.find(([pattern]) => pattern.test(line));
    // "N was stopped" also closes a task's cure while later tasks still wait for their parasite:
    // the next "Putting parasite blob" moves the stage back, as it must.
    if (mark) stage = mark[1];
  }
  return { stage, lastLine };
}

/** Killing criu here leaves every task able to continue (see the module comment). */
export function safeToKill(stage: DumpStage): boolean {
  return stage !== 'parasite';
}

/** A dump that stalled at the cure: the node's hardware breakpoints do not trap. */
export function stalledAtBreakpoint(progress: DumpProgress): boolean {
  return progress.stage === 'curing';
}
