/**
 * The scheduler may send the checkpoint signal at any moment, also while ckpt-run is still
 * loading and checking its inputs; Node's default action for SIGUSR2 would kill it. The entry
 * point holds the signal from its first line (this module has no dependencies, so it loads
 * first), and the launcher later takes the signals that came in the meantime.
 */
const pending = new Map<NodeJS.Signals, number>();
const holders = new Map<NodeJS.Signals, () => void>();

export function holdSignal(signal: NodeJS.Signals): void {
  if (holders.has(signal)) return;
  const holder = (): void => {
    pending.set(signal, (pending.get(signal) ?? 0) + 1);
  };
  holders.set(signal, holder);
  process.on(signal, holder);
}

/** Stops holding SIGNAL (call after installing the real handler); how many came meanwhile. */
export function releaseSignal(signal: NodeJS.Signals): number {
  const holder = holders.get(signal);
  if (holder) process.removeListener(signal, holder);
  holders.delete(signal);
  const count = pending.get(signal) ?? 0;
  pending.delete(signal);
  return count;
}
