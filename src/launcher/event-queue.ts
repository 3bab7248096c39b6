/**
 * Events handled one at a time, in the order they came: an event posted while one is being
 * handled (by a watcher, a timer, or the handler itself) waits its turn, so no step of the
 * machine ever runs inside another. After close() nothing is handled any more.
 */
export class EventQueue<E> {
  private readonly pending: E[] = [];
  private handling = false;
  private closed = false;

  constructor(private readonly handle: (event: E) => void) {}

  post(event: E): void {
    if (this.closed) return;
    this.pending.push(event);
    if (this.handling) return;
    this.handling = true;
    try {
      for (let next = this.pending.shift(); next !== undefined && !this.closed; next = this.pending.shift()) this.handle(next);
    } finally {
      this.handling = false;
    }
  }

  /** Drops what is queued and whatever comes later. */
  close(): void {
    this.closed = true;
    this.pending.length = 0;
  }
}
