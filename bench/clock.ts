/**
 * One clock for every timestamp of the benchmark: wall-clock milliseconds with microsecond
 * resolution. Node gives it as timeOrigin + performance.now() (a monotonic offset from a
 * realtime reading at process start); bash gives the same clock without a fork as
 * $EPOCHREALTIME. So the bench, its daemon (a separate process) and the program can stamp
 * events independently and still be compared.
 */
import { performance } from 'node:perf_hooks';
import { sleep } from '../src/proc/processes.js';

export { sleep };

export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** bash's $EPOCHREALTIME ("seconds.micros") in the same unit as now(). */
export function fromEpochRealtime(text: string): number {
  return Number(text) * 1000;
}

/** A settle delay at a random phase in [min, max) ms: a scheduler's signal comes at any time. */
export function randomDelay(min: number, max: number): Promise<void> {
  return sleep(min + Math.random() * (max - min));
}
