/**
 * The tests' one way to wait for what no event announces (a process leaving /proc, a log line, a
 * scheduler's state): poll, bounded, and say at the timeout what was awaited. WHAT may be a
 * function: it is then called at the timeout, so that a log it shows is the log as it was when
 * the wait gave up.
 */
import { sleep } from '../../src/proc/processes.js';

type What = string | (() => string);

/** Polls FN every PERIOD ms until it returns a value (not undefined); resolves to it. */
export async function pollFor<T>(fn: () => Promise<T | undefined> | T | undefined, what: What, timeoutMs: number, periodMs = 1000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await sleep(periodMs);
  }
}

/** Waits until CONDITION holds, looking every PERIOD ms (often: the conditions are cheap reads). */
export async function waitUntil(condition: () => boolean, what: What, timeoutMs = 10_000, periodMs = 5): Promise<void> {
  await pollFor(() => (condition() ? true : undefined), what, timeoutMs, periodMs);
}
