import { logger } from '@caffe-ts/blob';
import { convertBundledMnist, convertMnist, parseDigitList } from '@caffe-ts/io-leveldb';
import { UsageError } from '../args.js';
import { userPath } from '../paths.js';
import type { Command } from './index.js';
import { progressCallback, wantProgress } from '../progress.js';

const log = logger('convert_mnist_data.cpp');

export const convertMnistCommand: Command = {
  summary: 'convert MNIST idx files (or the bundled digits) to a Datum database',
  usage: 'IMAGES LABELS DB [--backend leveldb|lmdb]   |   --bundled train|test DB [--backend leveldb|lmdb] [--digits 0-4]',
  async run({ flags, positional }) {
    const backend = (flags.string('backend', 'leveldb') ?? 'leveldb').toLowerCase();
    const bundled = flags.string('bundled');
    const digitSpec = flags.string('digits');
    const progress = progressCallback('convert', wantProgress(flags), 'images');
    flags.checkAllUsed();
    if (backend !== 'leveldb' && backend !== 'lmdb') {
      throw new UsageError(`Invalid db backend ${backend} (expected leveldb or lmdb)`);
    }
    if (bundled !== undefined) {
      if (bundled !== 'train' && bundled !== 'test') throw new UsageError(`--bundled takes train or test, got '${bundled}'`);
      if (positional.length !== 1) throw new UsageError('--bundled takes exactly one output database path');
      let digits: number[] | undefined;
      try {
        digits = digitSpec === undefined ? undefined : parseDigitList(digitSpec);
      } catch (e) {
        throw new UsageError(`--digits: ${(e as Error).message}`);
      }
      try {
        await convertBundledMnist(bundled, userPath(positional[0]!), { backend, digits, onProgress: progress.onProgress });
      } finally {
        progress.stop();
      }
      return 0;
    }
    if (digitSpec !== undefined) throw new UsageError('--digits applies to --bundled only');
    if (positional.length !== 3) {
      throw new UsageError(`expected IMAGES LABELS DB, got ${positional.length} argument(s)`);
    }
    const [images, labels, db] = positional.map(userPath) as [string, string, string];
    log.info(`Converting ${images} and ${labels} into ${db}`);
    try {
      await convertMnist(images, labels, db, { backend, onProgress: progress.onProgress });
    } finally {
      progress.stop();
    }
    return 0;
  },
};
