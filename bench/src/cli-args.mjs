// Argument parsing for the bench scripts: node's parseArgs plus --help, which prints the script's
// leading comment (each script documents its options there), and a one-line message with exit
// status 2 for an unknown or malformed option instead of a stack trace.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/** The leading `//` comment block of the script at `url`, without the comment markers. */
export function usageOf(url) {
  const lines = readFileSync(fileURLToPath(url), 'utf8').split('\n');
  const out = [];
  for (const line of lines) {
    if (line.startsWith('#!')) continue;
    if (!line.startsWith('//')) {
      if (out.length) break;
      continue;
    }
    out.push(line.replace(/^\/\/ ?/, ''));
  }
  return out.join('\n');
}

/** parseArgs(config) for the script at `url`, answering --help and rejecting bad options in one line. */
export function parseBenchArgs(config, url) {
  const options = { ...config.options, help: { type: 'boolean', default: false } };
  let parsed;
  try {
    parsed = parseArgs({ ...config, options });
  } catch (e) {
    const name = fileURLToPath(url).split(/[\\/]/).pop();
    process.stderr.write(`${name}: ${e instanceof Error ? e.message : String(e)} (--help lists the options)\n`);
    process.exit(2);
  }
  if (parsed.values.help) {
    process.stdout.write(`${usageOf(url)}\n`);
    process.exit(0);
  }
  return parsed;
}
