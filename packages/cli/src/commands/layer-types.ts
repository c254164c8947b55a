import { cliRegistry } from './common.js';
import type { Command } from './index.js';

export const layerTypesCommand: Command = {
  summary: 'list the registered layer types',
  usage: '',
  async run({ flags, io }) {
    flags.checkAllUsed();
    io.stdout(cliRegistry().types().join('\n') + '\n');
    return 0;
  },
};
