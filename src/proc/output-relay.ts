/**
 * Copies what the program appends to its output file into one of ckpt-run's own streams,
 * from a byte offset kept in the run's state, so that across all the jobs of a run every line
 * reaches a job's output exactly once.
 */
import { closeSync, openSync, readSync, writeSync } from 'node:fs';

const CHUNK = 64 * 1024;

export class OutputRelay {
  private readonly buffer = Buffer.allocUnsafe(CHUNK);

  constructor(
    private readonly path: string,
    private readonly sinkFd: number,
    public offset: number,
  ) {}

  /** Relays everything appended since the last call. */
  pump(): void {
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch {
      return;
    }
    try {
      for (;;) {
        const n = readSync(fd, this.buffer, 0, CHUNK, this.offset);
        if (n === 0) break;
        writeFully(this.sinkFd, this.buffer.subarray(0, n));
        this.offset += n;
      }
    } finally {
      closeSync(fd);
    }
  }
}

function writeFully(fd: number, data: Buffer): void {
  let written = 0;
  while (written < data.length) {
    try {
      written += writeSync(fd, data, written);
    } catch (error) {
      // A non-blocking pipe (a terminal, a test harness) can be momentarily full.
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
    }
  }
}
