/**
 * The protocol's file names relative to the run folder (checkpoint, checkpoint_ok, ...): the
 * daemon reaches them through the pinned run folder, never by their full paths.
 */
import { runDirPaths } from '../protocol/run-dir.js';

export const RUN_FILES = runDirPaths('');
