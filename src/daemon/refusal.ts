/** A request the daemon will not serve; the message says why, for the log and the job. */
export class Refusal extends Error {}
