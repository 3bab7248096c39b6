/**
 * Whether a process tree holds an established TCP connection, from /proc: the socket inodes of
 * its descriptors against the ESTABLISHED rows of its network namespace's tcp tables. criu locks
 * the network only to dump such connections, and its nftables lock costs close to a second per
 * dump (measured here: 0.23 s without, 1.05 s with, for a sleep), so it is asked for only then.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

const ESTABLISHED = '01';

function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return inodes; // gone
  }
  for (const fd of fds) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
      if (inode) inodes.add(inode);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

function establishedInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue; // no IPv6, or gone
    }
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields[3] === ESTABLISHED) inodes.add(fields[9]);
    }
  }
  return inodes;
}

export function holdsEstablishedTcp(pids: number[]): boolean {
  return pids.some((pid) => {
    const sockets = socketInodes(pid);
    if (sockets.size === 0) return false;
    const established = establishedInodes(pid);
    return [...sockets].some((inode) => established.has(inode));
  });
}
