/** The end of a simulation: a table per job (cycle), a verdict, and the same as JSON. */
import { formatMegabytes } from '../base/sizes.js';
export interface CycleRecord {
  jobId: string;
  runSec: number;
  /** The daemon's dumps of this job's program (periodic ones included), and the last one's figures. */
  dumps?: number;
  dumpMs?: number;
  imageBytes?: number;
  /** The daemon's restore at this job's start, if it resumed: until the program ran. */
  restoreMs?: number;
  /** A lazy restore: until every page of the program's memory was in. */
  allInMs?: number;
  /** ckpt-run's exit code, and what it means. */
  exitCode: number;
  endedBy: string;
  /** The program ended on its own in this job. */
  finished: boolean;
  /** Files the resume could not put back as at the checkpoint, as ckpt-run named them. */
  notRolledBack?: string;
}

export interface SimulationSummary {
  engine: string;
  command: string[];
  cycles: CycleRecord[];
  checkpoints: number;
  verdict: string;
  ok: boolean;
  exitCode: number;
}

const cell = (value: number | undefined, unit: string, digits = 0): string =>
  value === undefined ? '-' : `${value.toFixed(digits)} ${unit}`;

export function formatSummary(summary: SimulationSummary): string {
  const header = ['cycle', 'job id', 'run time', 'dump', 'image', 'restore', 'ended by'];
  const rows = summary.cycles.map((cycle, index) => [
    String(index + 1),
    cycle.jobId,
    cell(cycle.runSec, 's', 1),
    (cycle.dumps ?? 0) > 1 ? `${cell(cycle.dumpMs, 'ms')} (${cycle.dumps} dumps)` : cell(cycle.dumpMs, 'ms'),
    cycle.imageBytes === undefined ? '-' : formatMegabytes(cycle.imageBytes),
    cycle.allInMs === undefined ? cell(cycle.restoreMs, 'ms') : `${cell(cycle.restoreMs, 'ms')} (all in ${cell(cycle.allInMs, 'ms')})`,
    cycle.endedBy,
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const line = (cells: string[]): string => cells.map((text, column) => text.padEnd(widths[column])).join('  ').trimEnd();
  return [
    '',
    `Simulation summary (engine: ${summary.engine})`,
    line(header),
    line(widths.map((width) => '-'.repeat(width))),
    ...rows.map(line),
    '',
    `${summary.ok ? 'OK' : 'FAILED'}: ${summary.verdict}`,
    '',
  ].join('\n');
}
