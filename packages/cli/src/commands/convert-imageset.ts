import { convertImageset } from '@caffe-ts/io-leveldb';
import { UsageError } from '../args.js';
import { userPath } from '../paths.js';
import type { Command } from './index.js';

export const convertImagesetCommand: Command = {
  summary: 'convert a list of images (path label lines) to a Datum database (Caffe convert_imageset)',
  usage:
    'ROOTFOLDER/ LISTFILE DB [--gray] [--shuffle] [--backend lmdb|leveldb] [--resize_width W --resize_height H] ' +
    '[--check_size] [--encoded] [--encode_type jpg|png]',
  async run({ flags, positional }) {
    const gray = flags.bool('gray');
    const shuffle = flags.bool('shuffle');
    const backend = (flags.string('backend', 'lmdb') ?? 'lmdb').toLowerCase();
    const resizeWidth = flags.int('resize_width', 0);
    const resizeHeight = flags.int('resize_height', 0);
    const checkSize = flags.bool('check_size');
    const encoded = flags.bool('encoded');
    const encodeType = flags.string('encode_type', '') ?? '';
    flags.checkAllUsed();
    if (backend !== 'leveldb' && backend !== 'lmdb') throw new UsageError(`Invalid db backend ${backend} (expected lmdb or leveldb)`);
    if (encodeType && !['jpg', 'jpeg', 'png'].includes(encodeType.toLowerCase())) {
      throw new UsageError(`--encode_type takes jpg or png, got '${encodeType}'`);
    }
    if (positional.length !== 3) throw new UsageError(`expected ROOTFOLDER/ LISTFILE DB, got ${positional.length} argument(s)`);
    const [root, list, db] = positional as [string, string, string];
    // The root folder is prefixed to each listed path as written (Caffe concatenates them).
    const rootFolder = root === '' ? '' : userPath(root) + (root.endsWith('/') ? '/' : '');
    await convertImageset(rootFolder, userPath(list), userPath(db), {
      gray,
      shuffle,
      backend,
      resizeWidth,
      resizeHeight,
      checkSize,
      encoded,
      encodeType,
    });
    return 0;
  },
};
