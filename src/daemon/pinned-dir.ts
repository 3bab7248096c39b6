/**
 * A directory held open by descriptor. The daemon runs as root inside folders that users
 * own, and a user can swap any of those folders (or their parents) for a symlink between a
 * check and an action. So a folder is checked once, opened with O_NOFOLLOW, and from then on
 * every file operation goes through /proc/PID/fd/N/NAME: the kernel resolves that from the
 * open directory itself (like openat(2)), wherever the folder has been moved since. The same
 * path works for the daemon's children (criu), which run as root too.
 */
import { closeSync, constants, fstatSync, openSync, readlinkSync, type Stats } from 'node:fs';

export class PinnedDir {
  private constructor(
    readonly fd: number,
    /** The directory's attributes when it was opened. */
    readonly stats: Stats,
  ) {}

  /** Throws ELOOP when `path` itself is a symlink, ENOTDIR when it is not a directory. */
  static open(path: string): PinnedDir {
    const fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    return new PinnedDir(fd, fstatSync(fd));
  }

  /** A path to NAME inside this very directory (to the directory itself without NAME). */
  path(name?: string): string {
    const self = `/proc/${process.pid}/fd/${this.fd}`;
    return name === undefined ? self : `${self}/${name}`;
  }

  /** Where the directory is now (its absolute path, as the kernel sees it). */
  location(): string {
    return readlinkSync(this.path());
  }

  close(): void {
    closeSync(this.fd);
  }
}
