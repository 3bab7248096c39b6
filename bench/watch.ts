/**
 * Timestamps of file events, taken by the bench itself through inotify (fs.watch): one watcher
 * per directory, the time of the first event for each name remembered, so that nothing is
 * lost when an event comes before anyone waits for it.
 */
import { existsSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { now, sleep } from './clock.js';

export class DirWatch {
  readonly dir: string;
  private readonly requireExists: boolean;
  /** When each name was first seen. */
  readonly first = new Map<string, number>();
  private readonly waiters = new Map<string, Array<(at: number) => void>>();
  private readonly watcher: FSWatcher;

  /**
   * requireExists: count an event only if the file exists when it is handled (for files that
   * are also removed, like checkpoint/pidfile); off for spool requests, which the daemon may
   * consume before the bench sees them.
   */
  constructor(dir: string, { requireExists = false } = {}) {
    this.dir = dir;
    this.requireExists = requireExists;
    this.watcher = watch(dir, (_event, name) => name && this.seen(name, now()));
  }

  seen(name: string, at: number): void {
    if (this.first.has(name)) return;
    if (this.requireExists && !existsSync(join(this.dir, name))) return;
    this.first.set(name, at);
    const waiters = this.waiters.get(name) ?? [];
    this.waiters.delete(name);
    for (const resolve of waiters) resolve(at);
  }

  /** Forget what was seen of `name`: the next event counts. */
  forget(name: string): void {
    this.first.delete(name);
  }

  /**
   * Resolves with the time of the first event for `name` (or undefined after timeoutMs). A
   * slow existence check stands in for an event the watcher missed (the time is then coarse).
   */
  async waitFor(name: string, timeoutMs = 10_000): Promise<number | undefined> {
    const deadline = now() + timeoutMs;
    const event = new Promise<number>((resolve) => {
      const seenAt = this.first.get(name);
      if (seenAt !== undefined) resolve(seenAt);
      else this.waiters.set(name, [...(this.waiters.get(name) ?? []), resolve]);
    });
    let result: number | undefined;
    event.then((at) => {
      result = at;
    });
    while (result === undefined) {
      if (now() > deadline) return undefined;
      await Promise.race([event, sleep(50)]);
      if (result === undefined && this.requireExists && existsSync(join(this.dir, name))) this.seen(name, now());
    }
    return result;
  }

  close(): void {
    this.watcher.close();
  }
}

/** Polls `check` (a function returning a value or undefined) every pollMs until it answers. */
export async function waitUntil<T>(check: () => T | undefined | false, { timeoutMs = 10_000, pollMs = 5, what = 'a condition' } = {}): Promise<T> {
  const deadline = now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(pollMs);
  }
}
