/** Timestamped, prefixed log lines on stderr (or a file): `ckpt-run: 2026-… warn: …`. */
import { writeSync } from 'node:fs';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export interface Logger {
  log(level: LogLevel, message: string): void;
}

export function createLogger(prefix: string, minimum: LogLevel, fd = 2): Logger {
  return {
    log(level, message) {
      if (RANK[level] < RANK[minimum]) return;
      const tag = level === 'info' ? '' : `${level}: `;
      writeSync(fd, `${prefix}: ${new Date().toISOString()} ${tag}${message}\n`);
    },
  };
}
