import { convertCifar } from '@caffe-ts/io-leveldb';
import { UsageError } from '../args.js';
import { userPath } from '../paths.js';
import type { Command } from './index.js';

export const convertCifarCommand: Command = {
  summary: 'convert the CIFAR-10 binary batches to Datum databases (Caffe convert_cifar_data)',
  usage: 'INPUT_FOLDER OUTPUT_FOLDER [lmdb|leveldb] [--backend lmdb|leveldb]',
  async run({ flags, positional }) {
    const flagBackend = flags.string('backend');
    flags.checkAllUsed();
    if (positional.length < 2 || positional.length > 3) {
      throw new UsageError(`expected INPUT_FOLDER OUTPUT_FOLDER [DB_TYPE], got ${positional.length} argument(s)`);
    }
    // Caffe's tool takes the database type as its third argument; --backend says the same.
    const backend = (positional[2] ?? flagBackend ?? 'lmdb').toLowerCase();
    if (positional[2] !== undefined && flagBackend !== undefined && flagBackend.toLowerCase() !== backend) {
      throw new UsageError(`the database type is given twice: '${positional[2]}' and --backend ${flagBackend}`);
    }
    if (backend !== 'leveldb' && backend !== 'lmdb') throw new UsageError(`Invalid db backend ${backend} (expected lmdb or leveldb)`);
    await convertCifar(userPath(positional[0]!), userPath(positional[1]!), { backend });
    return 0;
  },
};
