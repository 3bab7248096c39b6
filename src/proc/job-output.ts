/**
 * The job's own output files: its stdout and stderr where they are files (OAR's OAR.ID.stdout
 * and .stderr, Slurm's slurm-ID.out, a redirect), and those of the dry run that started it. They
 * change in every job: a resume's look for files changed after the checkpoint leaves them out
 * (launcher/file-rollback.ts), known by what they are, not by their names.
 */
import { fstatSync, readlinkSync, statSync } from 'node:fs';

/** A file by its path and inode (a renamed or re-linked one is still known). */
export interface OwnFile {
  path: string;
  inode: number;
}

/** Set by `ckpt-run simulate` for its jobs: its own output files, one path a line (the jobs write into pipes to it). */
export const JOB_OUTPUT_ENV = 'CKPT_RUN_JOB_OUTPUT';

/** This process's stdout and stderr, where they are regular files. */
export function ownOutputFiles(): OwnFile[] {
  const files: OwnFile[] = [];
  for (const fd of [1, 2]) {
    try {
      const stats = fstatSync(fd);
      if (!stats.isFile() || files.some((file) => file.inode === stats.ino)) continue;
      files.push({ path: readlinkSync(`/proc/self/fd/${fd}`), inode: stats.ino });
    } catch {
      // closed, or no /proc: nothing to leave out
    }
  }
  return files;
}

/** The job's own output files: its stdout and stderr, and those the dry run that started it names in ENV. */
export function jobOutputFiles(env: NodeJS.ProcessEnv): OwnFile[] {
  const named = (env[JOB_OUTPUT_ENV] ?? '').split('\n').filter(Boolean).flatMap((path): OwnFile[] => {
    try {
      return [{ path, inode: statSync(path).ino }];
    } catch {
      return [];
    }
  });
  return [...ownOutputFiles(), ...named];
}
