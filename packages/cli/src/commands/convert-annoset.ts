import { convertAnnoset } from '@caffe-ts/io-leveldb';
import { UsageError } from '../args.js';
import { userPath } from '../paths.js';
import { imageSetFlags, imageSetPaths } from './image-set-flags.js';
import type { Command } from './index.js';

/** The SSD fork's convert_annoset: a list of images and their labels or annotation files → an AnnotatedDatum database. */
export const convertAnnosetCommand: Command = {
  summary: 'convert images and their annotations to an AnnotatedDatum database (the SSD fork\'s convert_annoset)',
  usage:
    'ROOTFOLDER/ LISTFILE DB_NAME [--anno_type classification|detection] [--label_type xml|json|txt] ' +
    '[--label_map_file LABELMAP] [--check_label] [--gray] [--shuffle] [--backend lmdb|leveldb] [--min_dim N] [--max_dim N] ' +
    '[--resize_width W --resize_height H] [--check_size] [--encoded] [--encode_type jpg|png]',
  async run({ flags, positional }) {
    const options = imageSetFlags(flags);
    const annoType = flags.string('anno_type', 'classification') ?? 'classification';
    const labelType = flags.string('label_type', 'xml') ?? 'xml';
    const labelMapFile = flags.string('label_map_file', '') ?? '';
    const checkLabel = flags.bool('check_label');
    const minDim = flags.int('min_dim', 0);
    const maxDim = flags.int('max_dim', 0);
    flags.checkAllUsed();
    if (annoType !== 'classification' && annoType !== 'detection') {
      throw new UsageError(`--anno_type takes classification or detection, got '${annoType}'`);
    }
    if (!['xml', 'json', 'txt'].includes(labelType)) throw new UsageError(`--label_type takes xml, json or txt, got '${labelType}'`);
    const { root, list, db } = imageSetPaths(positional, 'DB_NAME');
    await convertAnnoset(root, list, db, {
      ...options,
      annoType,
      labelType,
      labelMapFile: labelMapFile ? userPath(labelMapFile) : '',
      checkLabel,
      minDim,
      maxDim,
    });
    return 0;
  },
};
