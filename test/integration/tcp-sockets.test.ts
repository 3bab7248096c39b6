/** treeHoldsTcp: real processes, one holding a TCP socket in a child, one holding none. */
import { readdirSync, readlinkSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { treeHoldsTcp } from '../../src/proc/tcp-sockets.js';
import { cleanUp, startTree } from '../helpers/daemon-fixtures.js';
import { waitUntil } from '../helpers/poll.js';
import { childrenOf } from '../../src/proc/processes.js';

function readlinkOr(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}

describe('treeHoldsTcp', () => {
  afterEach(cleanUp);

  it('sees a TCP socket held by a child of the root', async () => {
    // sh -> node listening on loopback: the socket is the child's, not the root's.
    const listener = `${process.execPath} -e "require('net').createServer().listen(0, '127.0.0.1', () => console.log('up')); setTimeout(() => {}, 60000)"`;
    const root = await startTree(['sh', '-c', `${listener}; true`]);
    await waitUntil(() => childrenOf(root).length > 0 && treeHoldsTcp(root), 'the child to listen', 10_000);
    expect(treeHoldsTcp(root)).toBe(true);
  });

  it('a tree with no TCP socket (a pipe, a UNIX socket) holds none', async () => {
    // An abstract UNIX socket: no file left behind.
    const root = await startTree([process.execPath, '-e', "require('net').createServer().listen('\\0ckpt-tcp-test-' + process.pid); setTimeout(() => {}, 60000)"]);
    const holdsSocket = (): boolean => readdirSync(`/proc/${root}/fd`).some((fd) => readlinkOr(`/proc/${root}/fd/${fd}`).startsWith('socket:'));
    await waitUntil(holdsSocket, 'the UNIX socket to be open', 10_000);
    expect(treeHoldsTcp(root)).toBe(false);
  });
});
