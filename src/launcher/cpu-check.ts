/**
 * Before a resume: the checkpoint's program chose its code for the CPU it was dumped on
 * (protocol/cpu-features.ts); on a CPU lacking any of those features it would die of an illegal
 * instruction after the restore, so the job refuses at once (exit 17), the checkpoint intact.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CliError, ExitCode } from '../base/exit-codes.js';
import { CPU_FEATURES_IMAGE, cpuOf, cpuRefusal, missingFeatures, parseCpuRecord } from '../protocol/cpu-features.js';
import type { RunDirPaths } from '../protocol/run-dir.js';

/** Throws CliError (exit 17) when this node's CPU lacks features recorded with the images; images without a record pass. */
export function checkCpuFeatures(paths: RunDirPaths, cpuinfo = readFileSync('/proc/cpuinfo', 'utf8'), host = hostname()): void {
  let text: string;
  try {
    text = readFileSync(join(paths.images, CPU_FEATURES_IMAGE), 'utf8');
  } catch {
    return; // images of another engine, or of a daemon that recorded no CPU
  }
  const recorded = parseCpuRecord(text);
  if (!recorded) return;
  const here = cpuOf(cpuinfo, host);
  const missing = missingFeatures(recorded, here);
  if (missing.length > 0) throw new CliError(cpuRefusal(recorded, here, missing), ExitCode.CpuMissing);
}
