/**
 * The files a checkpoint's program held open for writing, as ckpt-daemon's action script
 * records them in the images while the tree is frozen (OPEN_FILES_IMAGE): one line per file,
 * "SIZE INODE PATH". A job that resumes the checkpoint after the run went on without it (a
 * crash, a kill) cuts each file back to SIZE (launcher/file-rollback.ts): CRIU itself checks
 * no size for a file opened O_APPEND and refuses any other that grew ("has bad size").
 */
export interface OpenFile {
  path: string;
  size: number;
  /** The inode: a file replaced under the same name is another file. NFS keeps inode numbers, not device numbers. */
  inode: number;
}

/** Parses the record; a line that is not "SIZE INODE /PATH" is left out (the script writes none). */
export function parseOpenFiles(text: string): OpenFile[] {
  const files = new Map<string, OpenFile>();
  for (const line of text.split('\n')) {
    const match = /^(\d+) (\d+) (\/.*)$/.exec(line);
    if (match) files.set(match[3], { size: Number(match[1]), inode: Number(match[2]), path: match[3] });
  }
  return [...files.values()];
}
