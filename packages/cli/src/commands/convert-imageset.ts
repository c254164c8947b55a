import { convertImageset } from '@caffe-ts/io-leveldb';
import { imageSetFlags, imageSetPaths } from './image-set-flags.js';
import type { Command } from './index.js';

export const convertImagesetCommand: Command = {
  summary: 'convert a list of images (path label lines) to a Datum database (Caffe convert_imageset)',
  usage:
    'ROOTFOLDER/ LISTFILE DB [--gray] [--shuffle] [--backend lmdb|leveldb] [--resize_width W --resize_height H] ' +
    '[--check_size] [--encoded] [--encode_type jpg|png]',
  async run({ flags, positional }) {
    const options = imageSetFlags(flags);
    flags.checkAllUsed();
    const { root, list, db } = imageSetPaths(positional, 'DB');
    await convertImageset(root, list, db, options);
    return 0;
  },
};
