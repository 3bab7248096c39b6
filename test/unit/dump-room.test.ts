/** The daemon's room check for a dump (src/daemon/dump-room.ts): what it counts and what it says. */
import { describe, expect, it } from 'vitest';
import { dumpRoomNeeded, dumpRoomRefusal } from '../../src/daemon/dump-room.js';

const MB = 1e6;

describe('room for a dump', () => {
  it('counts the node-local state archived with the dump beside the memory, with the same margin', () => {
    expect(dumpRoomNeeded(100 * MB, 0) - 32 * 2 ** 20).toBeCloseTo(110 * MB, -1);
    expect(dumpRoomNeeded(100 * MB, 400 * MB) - 32 * 2 ** 20).toBeCloseTo(550 * MB, -1);
  });

  it('refuses a dump whose node-local files would not fit though its memory would, naming the folder, both sizes and the fix', () => {
    const figures = { memory: 100 * MB, local: 400 * MB, free: 300 * MB };
    expect(dumpRoomRefusal('/home/u/run', 'u', { ...figures, local: 0 })).toBeUndefined();
    const said = dumpRoomRefusal('/home/u/run', 'u', figures) ?? '';
    expect(said).toMatch(/^not enough room for the dump in \/home\/u\/run: it needs about 583\.6 MB \(the program's 100\.0 MB of memory, 400\.0 MB of its node-local files carried with it, and a margin\) and the filesystem has 300\.0 MB free for u; /);
    expect(said).toMatch(/free some space or quota \(ckpt-run clean lists the images no job will resume\)$/);
    expect(said.split('\n')).toHaveLength(1);
  });

  it('says only the memory when nothing node-local travels', () => {
    expect(dumpRoomRefusal('/r', 'u', { memory: 100 * MB, local: 0, free: MB })).toMatch(/\(the program's 100\.0 MB of memory and a margin\)/);
  });
});
