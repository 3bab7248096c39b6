/** Whether a process tree holds TCP sockets, from /proc: CRIU must then lock the network. */
import { fdTargets, readOrEmpty, treeOf } from './processes.js';

/** The socket inodes a process's descriptors point to. */
export function socketInodes(pid: number): string[] {
  return fdTargets(pid).flatMap((target) => /^socket:\[(\d+)\]$/.exec(target)?.[1] ?? []);
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

/** An address of /proc/net/{tcp,udp}{,6}: hex, each 32-bit word in the host's (little-endian) order, then the port. */
export function decodeAddress(hex: string): string {
  const [ip, port] = hex.split(':');
  const words = (ip.match(/.{8}/g) ?? []).map((word) => (word.match(/../g) ?? []).reverse().map((byte) => parseInt(byte, 16)));
  const bytes = words.flat();
  const portNumber = parseInt(port, 16);
  if (bytes.length === 4) return `${bytes.join('.')}:${portNumber}`;
  const v4mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (v4mapped) return `${bytes.slice(12).join('.')}:${portNumber}`;
  const groups = Array.from({ length: 8 }, (_, i) => ((bytes[2 * i] << 8) | bytes[2 * i + 1]).toString(16));
  return `[${groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::')}]:${portNumber}`;
}

/** Loopback and wildcard addresses are the same on every node; any other is this node's own. */
export function isNodeAddress(address: string): boolean {
  const host = address.replace(/:\d+$/, '');
  return !/^(127\.|0\.0\.0\.0$|\[::1?\]$)/.test(host);
}

const TCP_STATES: Record<string, string> = { '01': 'connected', '0A': 'listening' };

/**
 * The sockets of PID's network namespace bound to one of this node's own addresses, by inode:
 * "TCP 10.0.0.5:5000 (listening)". TABLES: the /proc/PID/net tables' texts by name (tcp, tcp6, udp, udp6).
 */
export function nodeBoundSockets(tables: Record<string, string>): Map<string, string> {
  const bound = new Map<string, string>();
  for (const [name, text] of Object.entries(tables)) {
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const [local, state, inode] = [fields[1], fields[3], fields[9]];
      if (local === undefined || inode === undefined || inode === '0') continue;
      const address = decodeAddress(local);
      if (!isNodeAddress(address)) continue;
      const protocol = name.startsWith('tcp') ? 'TCP' : 'UDP';
      const how = protocol === 'TCP' ? TCP_STATES[state] : 'bound';
      if (how) bound.set(inode, `${protocol} ${address} (${how})`);
    }
  }
  return bound;
}

/** What the tree rooted at ROOT holds of nodeBoundSockets: these cannot come back as they are on another node. */
export function treeNodeSockets(root: number): string[] {
  const tables = Object.fromEntries(['tcp', 'tcp6', 'udp', 'udp6'].map((name) => [name, readOrEmpty(`/proc/${root}/net/${name}`)]));
  const bound = nodeBoundSockets(tables);
  if (bound.size === 0) return [];
  return [...new Set(treeOf(root).flatMap((pid) => socketInodes(pid).flatMap((inode) => bound.get(inode) ?? [])))];
}
