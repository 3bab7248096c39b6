/** Counts as a sentence says them: "1 checkpoint", "2 checkpoints", "0 cycles". */
export const plural = (count: number, noun: string): string => `${count} ${noun}${count === 1 ? '' : 's'}`;

/**
 * A message quoted inside a sentence of ours: without its own closing full stop, which would
 * double ours ("… --tcp-established option.. The program …": CRIU ends its hints with one).
 */
export const quoted = (message: string): string => message.trim().replace(/\.+$/, '');
