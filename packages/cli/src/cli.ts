import { CaffeError } from '@caffe-ts/proto';
import { Flags, parseArgs, UsageError } from './args.js';
import { COMMANDS, type CommandContext } from './commands/index.js';
import { loadPlugins, PluginError, pluginHint } from './plugins.js';

const BOOLEAN_FLAGS = ['verbose', 'gray', 'shuffle', 'check_size', 'check_label', 'encoded', 'help', 'use_07_metric'];
/** Flags that take several words. */
const ARRAY_FLAGS = ['set'];
/** The flags every command takes (plugins.ts). */
const PLUGIN_USAGE = '[--plugin MODULE] [--kernels wasm|native]';

export function usage(): string {
  const lines = ['usage: caffe <command> <args>', '', 'commands:'];
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length)) + 2;
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(width)}${c.summary}`);
  lines.push(
    '',
    'Flags take Caffe\'s spellings (-solver=S) or GNU ones (--solver S). Run `caffe <command> --help` for its flags.',
    'Every command takes --plugin MODULE (repeated, or comma-separated): files or packages that register',
    'layer types, imported before the command runs (e.g. --plugin @caffe-ts/layers-contrib/register for',
    'the SSD/MobileNet forks\' layers, or --plugin ./my-layer.mjs).',
    'Every command takes --kernels native: convolutions and GEMMs in OpenBLAS through @caffe-ts/backend-native',
    '(installed beside this command), here and in every worker thread; the default is WebAssembly.',
  );
  return lines.join('\n');
}

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const processIo: CliIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
};

/** Run the caffe command line; resolves to the exit status. */
export async function runCli(argv: string[], io: CliIo = processIo): Promise<number> {
  const args = parseArgs(argv, BOOLEAN_FLAGS, ARRAY_FLAGS);
  const verbose = args.flags.verbose === true;
  if (!args.command || args.command === 'help') {
    io.stdout(usage() + '\n');
    // Asked for (caffe help, caffe --help): success; no command at all is a usage error, as in Caffe.
    return args.command || args.flags.help === true ? 0 : 1;
  }
  const command = COMMANDS[args.command];
  if (!command) {
    io.stderr(`caffe: unknown command '${args.command}'\n${usage()}\n`);
    return 1;
  }
  if (args.flags.help === true) {
    io.stdout(`usage: caffe ${args.command} ${command.usage} ${PLUGIN_USAGE}\n`);
    return 0;
  }
  const flags = new Flags(args.command, args.flags);
  const ctx: CommandContext = { flags, positional: args.positional, io };
  try {
    await loadPlugins(flags.strings('plugin'));
    await loadKernels(flags.string('kernels'));
    return (await command.run(ctx)) ?? 0;
  } catch (e) {
    if (verbose || !(CaffeError.isInstance(e) || isNodeFileError(e))) {
      io.stderr(`caffe ${args.command}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    } else {
      io.stderr(`caffe ${args.command}: ${(e as Error).message}\n`);
    }
    const hint = e instanceof Error ? pluginHint(e.message) : '';
    if (hint) io.stderr(`caffe ${args.command}: ${hint}\n`);
    if (UsageError.isInstance(e)) io.stderr(`usage: caffe ${args.command} ${command.usage} ${PLUGIN_USAGE}\n`);
    return 1;
  }
}

/** What --kernels native loads, as a plugin (so the data-parallel workers load it too). */
export const NATIVE_KERNELS_MODULE = '@caffe-ts/backend-native/register';

/** --kernels: 'wasm' (the default) needs nothing; 'native' loads NATIVE_KERNELS_MODULE. */
async function loadKernels(kernels: string | undefined): Promise<void> {
  if (kernels === undefined || kernels === 'wasm') return;
  if (kernels !== 'native') throw new UsageError(`--kernels expects wasm or native, got '${kernels}'`);
  try {
    await loadPlugins([NATIVE_KERNELS_MODULE]);
  } catch (e) {
    const why = e instanceof Error ? e.message.replace(/^--plugin \S+: /, '') : String(e);
    throw new PluginError(
      `--kernels native: ${why}\n(@caffe-ts/backend-native must be installed beside the caffe command; it compiles against OpenBLAS, Debian's libopenblas-dev)`,
      { cause: e },
    );
  }
}

function isNodeFileError(e: unknown): boolean {
  return e instanceof Error && typeof (e as { code?: unknown }).code === 'string' && /^E[A-Z]+$/.test((e as unknown as { code: string }).code);
}
