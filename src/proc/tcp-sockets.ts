/** Whether a process tree holds TCP sockets, from /proc: CRIU must then lock the network. */
import { readdirSync, readlinkSync } from 'node:fs';
import { readOrEmpty, treeOf } from './processes.js';

/** The socket inodes a process's descriptors point to. */
export function socketInodes(pid: number): string[] {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return []; // gone
  }
  return fds.flatMap((fd) => {
    try {
      return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1] ?? [];
    } catch {
      return [];
    }
  });
}

/** Whether a process of the tree rooted at ROOT holds a TCP socket (IPv4 or IPv6, any state). */
export function treeHoldsTcp(root: number): boolean {
  const tcp = new Set<string>();
  for (const table of ['tcp', 'tcp6']) {
    // Columns: sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    for (const line of readOrEmpty(`/proc/${root}/net/${table}`).split('\n').slice(1)) {
      const inode = line.trim().split(/\s+/)[9];
      if (inode !== undefined && inode !== '0') tcp.add(inode);
    }
  }
  return tcp.size > 0 && treeOf(root).some((pid) => socketInodes(pid).some((inode) => tcp.has(inode)));
}
