import { CaffeError } from '@caffe-ts/proto';
import { Flags, parseArgs, UsageError } from './args.js';
import { COMMANDS, type CommandContext } from './commands/index.js';
import { loadPlugins, pluginHint } from './plugins.js';

const BOOLEAN_FLAGS = ['verbose', 'gray', 'shuffle', 'check_size', 'check_label', 'encoded', 'help', 'use_07_metric'];
/** Flags that take several words. */
const ARRAY_FLAGS = ['set'];
/** The flag every command takes (plugins.ts). */
const PLUGIN_USAGE = '[--plugin MODULE]';

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

function isNodeFileError(e: unknown): boolean {
  return e instanceof Error && typeof (e as { code?: unknown }).code === 'string' && /^E[A-Z]+$/.test((e as unknown as { code: string }).code);
}
