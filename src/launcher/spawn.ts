/** Starting the program's tree (src/proc/program-tree.ts) and turning the outcome into events. */
import { spawnProgramTree, type SpawnTreeOptions } from '../proc/program-tree.js';
import type { MachineEvent } from './machine-state.js';

/**
 * Starts the tree; posts spawned or spawnFailed. EXITED runs when our own child (the shim, or
 * unshare around it) exits: the fastest news that the tree is gone.
 */
export function spawnProgram(options: SpawnTreeOptions, post: (event: MachineEvent) => void, exited: () => void): void {
  spawnProgramTree(options).then(
    (tree) => {
      tree.child.once('exit', exited);
      post({ type: 'spawned', pid: tree.rootPid });
    },
    (error: Error) => post({ type: 'spawnFailed', reason: error.message }),
  );
}
