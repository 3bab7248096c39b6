/** ckpt-run's app engine (registry.ts): the program saves itself on a signal (app-link.ts); its options and help: app-options.ts. */
import type { JobEngine } from '../link.js';
import { AppLink, appEnvironment } from './app-link.js';
import { APP_HELP, APP_OPTIONS, appSettings, type AppSettings } from './app-options.js';

export const APP_ENGINE: JobEngine<AppSettings, typeof APP_OPTIONS> = {
  summary: 'the program saves itself on a signal',
  help: APP_HELP,
  options: APP_OPTIONS,
  settings: appSettings,
  link: (settings, { paths, reasonNow }) => new AppLink({ ...settings, paths, reasonNow }),
  usesDaemon: false,
  programEnvironment: appEnvironment,
};
