/** The readable report: the table of figures with their targets, the scale run, the notes. */
import { relative } from 'node:path';
import { DAEMON_DESCRIPTIONS, type DaemonKind } from './daemon.js';
import type { IdleResult } from './figures/idle.js';
import type { ScaleResult } from './figures/scale.js';
import type { ShareResult } from './figures/share.js';
import { CKPT_RUN, OARSTAT_DELAY_SEC, ROOT, type Tool } from './jobs.js';
import type { MachineInfo } from './machine.js';
import { formatNumber, formatRatio, formatSummary, formatValue, ratio, summarize, type Summary } from './stats.js';

/** The options of a bench run (bench/run.ts). */
export interface BenchOptions {
  rounds: number;
  idleSeconds: number;
  idleWarmup: number;
  scaleJobs: number;
  scaleBaseline: boolean;
  baseline: boolean;
  daemon: string;
  json?: string;
  keep: boolean;
  ckptRunBin?: string;
  /** Each window of the CPU-share run; 0: no such run. */
  shareSeconds: number;
  /** The image of the full vs lazy restore run, in MiB; 0: no such run. */
  restoreMib: number;
  periodicMib: number;
  keptMib: number;
}

/** Per tool, the samples of each single-job figure. */
export type SampleKey = 'startup' | 'reaction' | 'cycle' | 'okToExit' | 'dump' | 'dumpReported' | 'resume' | 'restore' | 'restoreReported' | 'exit' | 'rss';
export type ToolSamples = Record<SampleKey, Array<number | undefined>> & { exitCodes: Array<number | null | undefined> };

export interface Refusal {
  tool: string;
  job: string;
  reason: string | undefined;
}

export interface Target {
  text: string;
  met: boolean | undefined;
  detail?: string;
}

export interface Row {
  label: string;
  unit: string;
  ckpt?: Summary;
  base?: Summary;
  ratio?: number;
  ckptText?: string;
  baseText?: string;
  ratioText?: string;
  target?: Target;
}

export interface Measured {
  opts: BenchOptions;
  machine: MachineInfo;
  choice: { kind: DaemonKind; why: string };
  haveBaseline: boolean;
  baselineShown: string;
  tools: Tool[];
  samples: Record<string, ToolSamples>;
  idle: Record<string, IdleResult>;
  scale: Record<string, ScaleResult>;
  /** Undefined when skipped (--share-seconds 0) or failed. */
  share?: ShareResult;
  refusals: Refusal[];
  errors: string[];
  elapsedMs: number;
}

/**
 * A row: { label, unit, ckpt, base (summaries or {text}), target?: { text, met } }.
 * Returns the table as lines of fixed-width columns.
 */
export function renderTable(rows: Row[]): string[] {
  const header = ['figure', 'ckpt-run  median [range] n', 'baseline  median [range] n', 'base/ckpt', 'target', ''];
  const body = rows.map((row) => [
    row.label,
    row.ckptText ?? formatSummary(row.ckpt, row.unit),
    row.baseText ?? formatSummary(row.base, row.unit),
    row.ratioText ?? formatRatio(row.ratio),
    row.target?.text ?? '',
    row.target ? (row.target.met === undefined ? '·' : row.target.met ? '✓' : '✗') + (row.target.detail ? ` ${row.target.detail}` : '') : '',
  ]);
  const widths = header.map((_, col) => Math.max(...[header, ...body].map((cells) => [...cells[col]].length)));
  const line = (cells: string[]): string => cells.map((cell, col) => cell + ' '.repeat(widths[col] - [...cell].length)).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)];
}

/** Target "≤ limit" on every sample (the worst one decides); says when only the median is within. */
export function atMost(summary: Summary | undefined, limit: number, unit: string): Target {
  const text = `≤ ${formatValue(limit, unit)}`;
  if (!summary) return { text, met: false, detail: '(not measured)' };
  if (summary.max <= limit) return { text, met: true };
  return { text, met: false, detail: summary.median <= limit ? `(median within; worst ${formatValue(summary.max, unit)})` : '' };
}

/** Everything measured → { rows, lines, notes, refusals }. */
export function buildReport(measured: Measured): { rows: Row[]; lines: string[]; notes: string[]; refusals: Refusal[] } {
  const { opts, machine, choice, haveBaseline, baselineShown, samples, idle, scale, share, refusals, errors, elapsedMs } = measured;
  const S = (tool: string, key: SampleKey): Summary | undefined => (samples[tool] ? summarize(samples[tool][key]) : undefined);
  const row = (label: string, key: SampleKey, unit: string, target?: number): Row => {
    const ckpt = S('ckpt-run', key);
    const base = S('baseline', key);
    return { label, unit, ckpt, base, ratio: ratio(base, ckpt), target: target === undefined ? undefined : atMost(ckpt, target, unit) };
  };
  const idleSummary = (tool: string, key: 'cpuSecondsPerHour' | 'startupCpuMs' | 'forksPerHour'): Summary | undefined =>
    idle[tool]?.[key] === undefined ? undefined : summarize([idle[tool][key]]);
  const idleCk = idleSummary('ckpt-run', 'cpuSecondsPerHour');
  const idleBl = idleSummary('baseline', 'cpuSecondsPerHour');
  const idleTarget: Target = idleCk && idleBl
    ? { text: '≤ 1/4 of baseline', met: idleCk.median <= idleBl.median / 4 }
    : { text: '≤ 1/4 of baseline', met: haveBaseline ? false : undefined, detail: haveBaseline ? '(not measured)' : '(no baseline to compare)' };
  const freshExit = (tool: string): { summary: Summary | undefined; text: string | undefined } => {
    const r = idle[tool];
    if (!r) return { summary: undefined, text: '—' };
    if (r.freshExitMs !== undefined) return { summary: summarize([r.freshExitMs]), text: undefined };
    return { summary: undefined, text: `never: still waiting ${formatValue(r.freshExitNeverMs ?? NaN, 'ms')} after` };
  };
  const freshCk = freshExit('ckpt-run');
  const freshBl = freshExit('baseline');
  const rows: Row[] = [
    row('start-up (spawn → program exec)', 'startup', 'ms', 150),
    row('checkpoint reaction (signal → request)', 'reaction', 'ms', 20),
    row('checkpoint cycle overhead (signal → exit 99, − dump)', 'cycle', 'ms', 50),
    row(`checkpoint_ok → exit 99 (oarstat answers after ${OARSTAT_DELAY_SEC} s)`, 'okToExit', 'ms', 100),
    row('resume overhead (start → PID held, − restore)', 'resume', 'ms', 200),
    row('exit detection after resume (program → wrapper exit)', 'exit', 'ms', 100),
    {
      label: 'exit detection, fresh run (program is a child)',
      unit: 'ms',
      ckpt: freshCk.summary,
      ckptText: freshCk.text,
      base: freshBl.summary,
      baseText: freshBl.text,
      ratioText: freshBl.summary ? undefined : '—',
      ratio: ratio(freshBl.summary, freshCk.summary),
      target: atMost(freshCk.summary, 100, 'ms'),
    },
    { label: `idle CPU per hour (${formatNumber(opts.idleSeconds)} s window, scaled)`, unit: 's', ckpt: idleCk, base: idleBl, ratio: ratio(idleBl, idleCk), target: idleTarget },
    {
      label: `  (info) CPU of the first ${formatNumber(opts.idleWarmup)} s (start-up)`,
      unit: 'ms',
      ckpt: idleSummary('ckpt-run', 'startupCpuMs'),
      base: idleSummary('baseline', 'startupCpuMs'),
    },
    {
      label: 'processes forked per hour (idle)',
      unit: '',
      ckpt: idleSummary('ckpt-run', 'forksPerHour'),
      base: idleSummary('baseline', 'forksPerHour'),
      ratioText: '—',
    },
    row('wrapper peak RSS (VmHWM)', 'rss', 'MiB', 60),
    row('  (info) daemon dump: request → checkpoint_ok, subtracted', 'dump', 'ms'),
    row('  (info) daemon restore: request → pidfile, subtracted', 'restore', 'ms'),
    row('  (info) dump time as the daemon reports it', 'dumpReported', 'ms'),
    row('  (info) restore time as the daemon reports it', 'restoreReported', 'ms'),
  ];

  const out: string[] = [];
  out.push(`ckpt-run benchmark — ${machine.date}`);
  out.push(`machine: ${machine.nproc} CPU (${machine.cpuModel}), ${machine.kernel}, node ${machine.node}, as ${machine.user}; load average ${machine.loadavg} at start, ${machine.loadavgAtEnd} at end`);
  out.push(`daemon:  ${DAEMON_DESCRIPTIONS[choice.kind]} — ${choice.why}; the same daemon process serves both tools`);
  out.push(`ckpt-run: ${relative(ROOT, CKPT_RUN) || CKPT_RUN}`);
  out.push(`baseline: ${haveBaseline ? `${baselineShown} (run in place)` : opts.baseline ? `${baselineShown} NOT FOUND: baseline not measured` : 'not measured (--no-baseline)'}`);
  out.push(`program: bash bench/program.sh (bash + sleep, idle); ${opts.rounds} ${haveBaseline ? 'A/B rounds, order alternating' : 'rounds'}`);
  out.push('');
  out.push(...renderTable(rows));
  out.push('');
  for (const tool of Object.keys(scale)) {
    const s = scale[tool];
    const f = (summary: Summary | undefined): string => (summary ? `median ${formatValue(summary.median, 'ms')}, slowest ${formatValue(summary.max, 'ms')}` : '—');
    const left = s.completed < s.jobs ? ` (${s.jobs - s.completed} left out: see below)` : '';
    out.push(`scale: ${s.jobs} concurrent ${tool} jobs${left}, one daemon — total ${formatValue(s.totalMs, 'ms')} (start+checkpoint ${formatValue(s.phasesMs.startAndCheckpoint, 'ms')}, resume ${formatValue(s.phasesMs.resume, 'ms')})`);
    out.push(`  start-up ${f(s.startupMs)}; reaction ${f(s.reactionMs)}; cycle overhead ${f(s.cycleMs)}`);
    out.push(`  resume overhead ${f(s.resumeMs)}; exit detection ${f(s.exitMs)}; failures: ${s.failures.length ? s.failures.join('; ') : 'none'}`);
  }
  if (Object.keys(scale).length) out.push('');
  if (share) out.push(...shareLines(share), '');
  const allRefusals: Refusal[] = [...refusals, ...Object.entries(scale).flatMap(([tool, r]) => r.refusals.map((x) => ({ tool, ...x })))];
  const notes = notesFor(measured, freshBl.text?.startsWith('never') === true, allRefusals);
  for (const note of notes) out.push(`note: ${note}`);
  for (const error of errors) out.push(`ERROR: ${error}`);
  out.push(`bench took ${formatValue(elapsedMs, 'ms')}`);
  return { rows, lines: out, notes, refusals: allRefusals };
}

/** The CPU-share run: the program's share plainly and under ckpt-run, and whether the kernel groups by session here. */
function shareLines(share: ShareResult): string[] {
  const f = (summary: Summary | undefined): string => (summary ? `${formatNumber(summary.median)} % [${formatNumber(summary.min)}–${formatNumber(summary.max)}]` : '—');
  return [
    `CPU share: the program (${share.width} busy loops) against another session's ${share.width}, ${share.plain?.n ?? 0} A/B windows of ${formatNumber(share.seconds)} s`,
    `  plainly, in the job's session: ${f(share.plain)}; under ckpt-run, in a session of its own: ${f(share.ckptRun)}; ratio ${formatRatio(ratio(share.plain, share.ckptRun))}`,
    `  ${share.grouping.why}`,
  ];
}

/** The notes under the table: how each figure was taken, and what the run showed beyond the numbers. */
function notesFor({ opts, machine, choice, haveBaseline, tools, samples, idle }: Measured, baselineNeverExits: boolean, allRefusals: Refusal[]): string[] {
  const notes: string[] = [];
  notes.push('targets: ✓ when every sample is within (the worst one decides); ratios are baseline median / ckpt-run median.');
  notes.push('times: bench-side inotify and child-exit timestamps, the program\'s own $EPOCHREALTIME stamps and the daemon\'s reports share one wall clock (µs resolution).');
  notes.push('the checkpoint signal and the program\'s end come at a random 0.3–1.3 s after the program (re)started, so a polling wrapper is caught at a random phase of its poll.');
  notes.push(`both tools run as OAR jobs (OAR_JOB_ID set) with an \`oarstat\` stand-in first on PATH that answers after ${OARSTAT_DELAY_SEC} s, as a loaded OAR server does: ckpt-run asks it why the job stops at the signal, and its exit 99 must not wait for the answer (checkpoint_ok → exit 99: the bench's inotify sees checkpoint_ok, then the wrapper's exit). The baseline never asks.`);
  if (haveBaseline) {
    notes.push('baseline reaction and cycle overhead are dominated by its 1 s `sleep` polling: bash runs the trap only when the current `sleep 1` ends, then polls /proc and checkpoint_ok once a second.');
    notes.push('baseline resume overhead is dominated by its fixed sleeps: 30 s before the request, 5 s after the pidfile (plus the 1 s pidfile poll); its resumes ran concurrently with later rounds and the idle run to keep the bench short.');
    const codes = samples.baseline.exitCodes;
    if (codes.length) notes.push(`baseline exit after resume: it exited ${[...new Set(codes)].join('/')} when the program ended with 42 (a stale checkpoint_ok makes it exit 99: the job would be resubmitted and the old image resumed again).`);
    if (baselineNeverExits) notes.push('baseline in a fresh run never exits after the program ends: it waits for a checkpoint_ok that no one makes (until walltime).');
    notes.push('baseline peak RSS is that of its bash process.');
  }
  const ckCodes = samples['ckpt-run'].exitCodes;
  if (ckCodes.some((c) => c !== 42)) notes.push(`ckpt-run exit codes after resume: ${ckCodes.join(', ')} (expected the program's 42).`);
  const methods = [...new Set(Object.values(idle).map((r) => r.cpuMethod))].join(', ');
  notes.push(`idle cost: the wrapper's processes and all they fork, the program's subtree left out, measured with ${methods || '—'} over a window that opens ${formatNumber(opts.idleWarmup)} s after the program started (start-up CPU shown apart: it is paid once, not per hour); ${tools.map((t) => t.name).join(' and ')} side by side; forks sampled every 10 ms.`);
  notes.push(`ckpt-run ran as ${machine.user} with its defaults (--pid-namespace off: node + sh shim); RSS is the node process's.`);
  if (choice.kind !== 'ckpt-daemon') notes.push('no real CRIU: dump and restore are kill + restart of the command; the job-side figures subtract the daemon\'s time either way.');
  if (allRefusals.length) {
    const byTool = [...new Set(allRefusals.map((r) => r.tool))].map((tool) => `${allRefusals.filter((r) => r.tool === tool).length} of ${tool}'s`).join(', ');
    const reasons = [...new Set(allRefusals.map((r) => (r.reason ?? '').replace(/"\d+"/, '"PID"')))].join('; ');
    notes.push(`the daemon REFUSED ${byTool} requests (${reasons}); refused rounds were run again (up to 3 tries), refused scale jobs are left out of the scale figures.`);
  }
  return notes;
}
