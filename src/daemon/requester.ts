/** Who asked: the owner of a request file, as the node's user database knows them. */
import { execa } from 'execa';
import type { Requester } from '../protocol/spool-request.js';
import { Refusal } from './refusal.js';

async function id(uid: number, flags: string): Promise<string> {
  const result = await execa('id', [flags, String(uid)], { reject: false });
  if (result.exitCode !== 0) throw new Refusal(`uid ${uid} is not a user this node knows (${result.stderr.trim()})`);
  return result.stdout.trim();
}

export async function lookupRequester(uid: number): Promise<Requester> {
  const [name, gid, gids] = await Promise.all([id(uid, '-nu'), id(uid, '-g'), id(uid, '-G')]);
  return { uid, name, gid: Number(gid), gids: gids.split(' ').map(Number) };
}
