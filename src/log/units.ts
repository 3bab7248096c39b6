/** Sizes as ckpt-run prints them everywhere: decimal megabytes, so one image has one size. */
export const megabytes = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;
