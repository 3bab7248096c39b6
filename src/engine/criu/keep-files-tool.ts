/** The keep tool's program (engine/keep-files.ts): the action script runs it as the user, with node. */
import { keepFilesMain } from './keep-files.js';

keepFilesMain();
