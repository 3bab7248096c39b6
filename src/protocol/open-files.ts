/**
 * The files a checkpoint's program held open for writing, as ckpt-daemon's action script
 * records them in the images while the tree is frozen (OPEN_FILES_IMAGE): one line per file,
 * "SIZE INODE BORN PATH" (BORN: the birth time, "SECONDS.NANOSECONDS", 0 where the filesystem
 * keeps none; images of earlier versions have "SIZE INODE PATH"). A job that resumes the checkpoint after the run went on without it (a
 * crash, a kill) cuts each file back to SIZE (launcher/file-rollback.ts): CRIU itself checks
 * no size for a file opened O_APPEND and refuses any other that grew ("has bad size").
 */
export interface OpenFile {
  path: string;
  size: number;
  /** The inode: a file replaced under the same name is another file. NFS keeps inode numbers, not device numbers. */
  inode: number;
  /**
   * The birth time in nanoseconds, where the filesystem keeps one: ext4 gives a file created
   * right after another was removed the inode number just freed, so the number alone would take
   * the new file for the old one.
   */
  bornNs?: bigint;
}

/** "SECONDS.NANOSECONDS" (stat's %.9W) in nanoseconds; undefined for 0 (no birth time kept). */
function nanoseconds(text: string | undefined): bigint | undefined {
  const match = text === undefined ? null : /^(\d+)\.(\d{9})$/.exec(text);
  const ns = match ? BigInt(match[1]) * 1_000_000_000n + BigInt(match[2]) : 0n;
  return ns > 0n ? ns : undefined;
}

/** Whether a file now (its inode, its birth time in ns where known) is the one the record names. */
export function sameOpenFile(file: OpenFile, inode: number, bornNs: bigint | undefined): boolean {
  return inode === file.inode && (file.bornNs === undefined || bornNs === undefined || bornNs === file.bornNs);
}

/** Parses the record; a line that is not "SIZE INODE [BORN] /PATH" is left out (the script writes none). */
export function parseOpenFiles(text: string): OpenFile[] {
  const files = new Map<string, OpenFile>();
  for (const line of text.split('\n')) {
    const match = /^(\d+) (\d+) (?:(\d+\.\d+) )?(\/.*)$/.exec(line);
    if (!match) continue;
    const bornNs = nanoseconds(match[3]);
    files.set(match[4], { size: Number(match[1]), inode: Number(match[2]), ...(bornNs === undefined ? {} : { bornNs }), path: match[4] });
  }
  return [...files.values()];
}
