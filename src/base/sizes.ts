/**
 * Sizes as ckpt-run and ckpt-daemon print them: one unit everywhere (MB, 10^6 bytes, as df -H
 * and the SI prefix say), so that an image reads the same in the daemon's log, `ckpt-run
 * status` and the simulation's summary.
 */
export function formatMegabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}
