import { computeImageMean } from '@caffe-ts/io-leveldb';
import { UsageError } from '../args.js';
import { userPath } from '../paths.js';
import type { Command } from './index.js';

export const computeImageMeanCommand: Command = {
  summary: 'compute the mean image of a Datum database (Caffe compute_image_mean)',
  usage: 'DB [OUTPUT.binaryproto] [--backend lmdb|leveldb]',
  async run({ flags, positional }) {
    const backend = (flags.string('backend', 'lmdb') ?? 'lmdb').toLowerCase();
    flags.checkAllUsed();
    if (backend !== 'leveldb' && backend !== 'lmdb') throw new UsageError(`Invalid db backend ${backend} (expected lmdb or leveldb)`);
    if (positional.length < 1 || positional.length > 2) throw new UsageError(`expected DB [OUTPUT_FILE], got ${positional.length} argument(s)`);
    const [db, out] = positional as [string, string | undefined];
    await computeImageMean(userPath(db), { backend, outFile: out === undefined ? undefined : userPath(out), outName: out });
    return 0;
  },
};
