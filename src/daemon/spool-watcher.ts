/**
 * Tells when the spool may hold something new: inotify (fs.watch) for speed, and a slow poll
 * for safety, since events can be lost (queue overflow, network filesystems) and a request
 * left waiting (still being written) needs another look.
 */
import { readdirSync, watch, type FSWatcher } from 'node:fs';

export const SPOOL_POLL_MS = 1000;

export class SpoolWatcher {
  private watcher?: FSWatcher;
  private poll?: NodeJS.Timeout;

  constructor(
    private readonly spoolDir: string,
    private readonly onName: (name: string) => void,
    private readonly onError: (error: Error) => void,
  ) {}

  start(): void {
    this.watcher = watch(this.spoolDir, (_event, name) => (name ? this.onName(name) : this.scan()));
    this.watcher.on('error', this.onError);
    this.poll = setInterval(() => this.scan(), SPOOL_POLL_MS);
    this.scan();
  }

  scan(): void {
    try {
      for (const name of readdirSync(this.spoolDir)) this.onName(name);
    } catch (error) {
      this.onError(error as Error);
    }
  }

  stop(): void {
    this.watcher?.close();
    clearInterval(this.poll);
  }
}
