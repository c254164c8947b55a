export { runCli, usage, type CliIo } from './cli.js';
export { parseArgs, Flags, UsageError, type ParsedArgs } from './args.js';
export { userCwd, userPath, launchDirectory } from './paths.js';
export { loadPlugins, PluginError } from './plugins.js';
