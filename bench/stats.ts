/** Median, range and ratio of samples, and how the table shows them. */

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  samples: Array<number | undefined>;
}

export function summarize(values: Array<number | undefined>): Summary | undefined {
  const xs = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return undefined;
  const mid = Math.floor(xs.length / 2);
  const median = xs.length % 2 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
  return { n: xs.length, median, min: xs[0], max: xs[xs.length - 1], samples: values };
}

/** How many times larger the baseline's median is than ckpt-run's. */
export function ratio(baseline: Summary | undefined, ckpt: Summary | undefined): number | undefined {
  if (!baseline || !ckpt || ckpt.median <= 0) return undefined;
  return baseline.median / ckpt.median;
}

function digits(value: number): number {
  const abs = Math.abs(value);
  if (abs >= 100) return 0;
  if (abs >= 10) return 1;
  if (abs >= 1) return 2;
  return 3;
}

export function formatNumber(value: number): string {
  return value.toFixed(digits(value));
}

/** "12.3 ms" / "1.52 s" for durations in ms; other units as they come. */
export function formatValue(value: number, unit: string): string {
  if (unit === 'ms') return Math.abs(value) >= 1000 ? `${formatNumber(value / 1000)} s` : `${formatNumber(value)} ms`;
  return `${formatNumber(value)}${unit ? ` ${unit}` : ''}`;
}

export function formatSummary(summary: Summary | undefined, unit: string): string {
  if (!summary) return '—';
  if (summary.n === 1) return `${formatValue(summary.median, unit)} (n=1)`;
  const range = `${formatValue(summary.min, unit)}–${formatValue(summary.max, unit)}`;
  return `${formatValue(summary.median, unit)} [${range}] n=${summary.n}`;
}

export function formatRatio(value: number | undefined): string {
  if (value === undefined) return '—';
  if (value >= 100) return `${Math.round(value)}×`;
  return `${value.toFixed(value >= 10 ? 1 : 2)}×`;
}
