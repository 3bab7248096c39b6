/**
 * A resubmitted job may land on another node: the checkpoint must be on a filesystem every
 * node sees. statfs(2) tells the filesystem type; local types get a warning at start.
 */
import { statfsSync } from 'node:fs';

const SHARED_TYPES = new Map<number, string>([
  [0x6969, 'nfs'],
  [0x0bd00bd0, 'lustre'],
  [0x47504653, 'gpfs'],
  [0x19830326, 'beegfs'],
  [0xff534d42, 'cifs'],
  [0xfe534d42, 'smb2'],
  [0x00c36400, 'ceph'],
  [0x65735546, 'fuse'],
  [0x01021997, '9p'],
  [0x013111a8, 'ibrix'],
  [0x5346414f, 'afs'],
  [0x6b414653, 'afs'],
]);

const LOCAL_TYPES = new Map<number, string>([
  [0x01021994, 'tmpfs'],
  [0xef53, 'ext4'],
  [0x58465342, 'xfs'],
  [0x9123683e, 'btrfs'],
  [0x794c7630, 'overlayfs'],
  [0x2fc12fc1, 'zfs'],
]);

/** A warning when `dir` is on a filesystem known to be node-local, else undefined. */
export function localFilesystemWarning(dir: string): string | undefined {
  let type: number;
  try {
    type = statfsSync(dir).type;
  } catch {
    return undefined;
  }
  if (SHARED_TYPES.has(type)) return undefined;
  const name = LOCAL_TYPES.get(type) ?? `type 0x${type.toString(16)}`;
  return (
    `the working directory ${dir} is on a local filesystem (${name}): a resubmitted job on ` +
    `another node will not find its checkpoint. Run from a shared filesystem (NFS, Lustre, …).`
  );
}
