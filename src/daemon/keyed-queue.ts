/**
 * Runs tasks so that two tasks sharing a key never overlap, while tasks with distinct keys
 * run at the same time: requests of different jobs are served concurrently, and two for the
 * same job (or the same run folder) one after the other.
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();

  /** A task's failure goes here and does not stop the tasks queued after it. */
  constructor(private readonly onError: (error: Error) => void) {}

  run(keys: string[], task: () => Promise<void>): void {
    const before = keys.map((key) => this.tails.get(key));
    const done: Promise<void> = Promise.all(before)
      .then(task)
      .catch(this.onError)
      .finally(() => {
        for (const key of keys) if (this.tails.get(key) === done) this.tails.delete(key);
      });
    for (const key of keys) this.tails.set(key, done);
  }

  /** Resolves once every task, including those queued meanwhile, has finished. */
  async idle(): Promise<void> {
    while (this.tails.size > 0) await Promise.all([...this.tails.values()]);
  }
}
