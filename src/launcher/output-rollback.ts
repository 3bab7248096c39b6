/**
 * A job killed without a new checkpoint (walltime reached after a failed dump, a node crash)
 * leaves output that the program wrote after its last checkpoint. Resumed from that
 * checkpoint, the program does that stretch again, so the run's output files are cut back to
 * where the checkpoint's program left them; the cut bytes are appended to
 * `*.rolled-back.log`, never thrown away (the killed job also relayed them to its own output).
 * Without this the resumed job would relay the lost stretch and then its redone twin.
 * CRIU allows it: the program holds its output files O_APPEND, whose size CRIU does not check.
 */
import { closeSync, existsSync, fsyncSync, openSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { OutputRelay } from '../proc/output-relay.js';
import { checkpointIdentity } from '../protocol/checkpoint-identity.js';
import type { RunDirPaths } from '../protocol/run-dir.js';
import { saveRunState, type RunState } from '../state/run-state.js';

/** The file every CRIU image set starts with. */
const CRIU_INVENTORY = 'inventory.img';

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Appends bytes OFFSET.. of SOURCE to TARGET: the relay's copy, into a file. */
function appendTail(source: string, offset: number, target: string): void {
  const fd = openSync(target, 'a');
  try {
    new OutputRelay(source, fd, offset).pump();
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Rolls the output files back to the resumed checkpoint; returns what it did, for the job's
 * log, or undefined when there was nothing to roll back. Crash-safe in this order: the cut
 * bytes are kept first, then the state saved, then the files cut (a crash in between makes
 * the next job do it again, at worst keeping the same bytes twice).
 */
export function rollBackOutput(paths: RunDirPaths, state: RunState): string | undefined {
  const mark = state.checkpointOutput;
  if (!mark || mark.checkpoint !== checkpointIdentity(paths.checkpointOk)) return undefined;
  // Only a CRIU image brings the program back as it was at the dump; a program that a restart
  // daemon starts again goes on from its own saved progress, and nothing of its output is redone.
  if (!existsSync(join(paths.images, CRIU_INVENTORY))) return undefined;
  const streams = [
    { name: 'stdout', log: paths.stdoutLog, keep: paths.stdoutRolledBack, size: mark.stdout },
    { name: 'stderr', log: paths.stderrLog, keep: paths.stderrRolledBack, size: mark.stderr },
  ] as const;
  const cuts = streams.map((stream) => ({ ...stream, extra: sizeOf(stream.log) - stream.size })).filter((cut) => cut.extra > 0);
  if (cuts.length === 0) return undefined;
  for (const cut of cuts) appendTail(cut.log, cut.size, cut.keep);
  state.relayed = { stdout: Math.min(state.relayed.stdout, mark.stdout), stderr: Math.min(state.relayed.stderr, mark.stderr) };
  saveRunState(paths.state, state);
  for (const cut of cuts) truncateSync(cut.log, cut.size);
  const previous = state.history[state.history.length - 1]?.jobId ?? 'the previous job';
  const what = cuts.map((cut) => `${cut.extra} bytes of ${cut.name} (kept in ${cut.keep})`).join(' and ');
  return (
    `job ${previous} ended without a new checkpoint (killed at its walltime?): the program resumes from the ` +
    `last checkpoint and does again what it did after it; the output it wrote then, ${what}, is rolled back`
  );
}
