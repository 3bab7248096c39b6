/**
 * `ckpt-run clean`: the checkpoint images that no job will resume (finished runs, runs whose next
 * job starts from the beginning), listed, and removed with --yes. The rule of what may go is
 * state/run-images.ts's: a run that may still resume, or may be running, is never touched.
 */
import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { relative } from 'node:path';
import { ExitCode } from '../base/exit-codes.js';
import { formatMegabytes } from '../base/sizes.js';
import { runDirFor, runDirPaths } from '../protocol/run-dir.js';
import { diskUse, imageFolders, imagesVerdict, removeImages, runIdsIn } from '../state/run-images.js';
import { loadRunState, type RunState } from '../state/run-state.js';
import { workdirArgument } from './status-command.js';

function stateOrUndefined(path: string): RunState | undefined {
  try {
    return loadRunState(path);
  } catch {
    return undefined;
  }
}

/** Lists (or removes) WORKDIR's images; returns the exit code. */
export function clean(workdir: string, remove: boolean, write: (text: string) => void): number {
  let removable = 0;
  let freed = 0;
  let failed = false;
  const names = (dirs: string[]): string => dirs.map((dir) => `${relative(workdir, dir)}/`).join(' ');
  for (const runId of runIdsIn(workdir)) {
    const paths = runDirPaths(runDirFor(workdir, runId));
    const folders = imageFolders(paths);
    if (folders.length === 0) continue;
    const verdict = imagesVerdict(stateOrUndefined(paths.state), existsSync(paths.checkpointOk));
    const bytes = diskUse(paths).images;
    if (!verdict.removable) {
      write(`kept      ${names(folders)} (${formatMegabytes(bytes)}): ${verdict.why}\n`);
      continue;
    }
    removable += bytes;
    if (!remove) {
      write(`removable ${names(folders)} (${formatMegabytes(bytes)}): ${verdict.why}\n`);
      continue;
    }
    const result = removeImages(paths);
    freed += result.freed;
    if (result.removed.length > 0) write(`removed   ${names(result.removed)} (${formatMegabytes(result.freed)}): ${verdict.why}\n`);
    for (const problem of result.problems) write(`  ${problem}\n`);
    failed ||= result.problems.length > 0;
  }
  if (!remove) {
    write(removable === 0 ? 'nothing to remove\n' : `${formatMegabytes(removable)} can be removed: ckpt-run clean --yes ${workdir}\n`);
    return 0;
  }
  write(`freed ${formatMegabytes(freed)}\n`);
  return failed ? ExitCode.CleanIncomplete : 0;
}

export function cleanCommand(): Command {
  return new Command('clean')
    .description('list (with --yes: remove) the checkpoint images of finished or failed runs; never those of a run that may still resume or be running')
    .argument('[dir]', 'the working directory (default: the current one)')
    .option('--yes', 'remove the images listed as removable')
    .action((dir: string | undefined, options: { yes?: boolean }) => {
      process.exitCode = clean(workdirArgument(dir), options.yes === true, (text) => process.stdout.write(text));
    });
}
