import { convertAnnoset } from '@caffe-ts/io-leveldb';
import { UsageError } from '../args.js';
import { userPath } from '../paths.js';
import type { Command } from './index.js';

/** The SSD fork's convert_annoset: a list of images and their labels or annotation files → an AnnotatedDatum database. */
export const convertAnnosetCommand: Command = {
  summary: 'convert images and their annotations to an AnnotatedDatum database (the SSD fork\'s convert_annoset)',
  usage:
    'ROOTFOLDER/ LISTFILE DB_NAME [--anno_type classification|detection] [--label_type xml|json|txt] ' +
    '[--label_map_file LABELMAP] [--check_label] [--gray] [--shuffle] [--backend lmdb|leveldb] [--min_dim N] [--max_dim N] ' +
    '[--resize_width W --resize_height H] [--check_size] [--encoded] [--encode_type jpg|png]',
  async run({ flags, positional }) {
    const gray = flags.bool('gray');
    const shuffle = flags.bool('shuffle');
    const backend = (flags.string('backend', 'lmdb') ?? 'lmdb').toLowerCase();
    const annoType = flags.string('anno_type', 'classification') ?? 'classification';
    const labelType = flags.string('label_type', 'xml') ?? 'xml';
    const labelMapFile = flags.string('label_map_file', '') ?? '';
    const checkLabel = flags.bool('check_label');
    const minDim = flags.int('min_dim', 0);
    const maxDim = flags.int('max_dim', 0);
    const resizeWidth = flags.int('resize_width', 0);
    const resizeHeight = flags.int('resize_height', 0);
    const checkSize = flags.bool('check_size');
    const encoded = flags.bool('encoded');
    const encodeType = flags.string('encode_type', '') ?? '';
    flags.checkAllUsed();
    if (backend !== 'leveldb' && backend !== 'lmdb') throw new UsageError(`Invalid db backend ${backend} (expected lmdb or leveldb)`);
    if (annoType !== 'classification' && annoType !== 'detection') {
      throw new UsageError(`--anno_type takes classification or detection, got '${annoType}'`);
    }
    if (!['xml', 'json', 'txt'].includes(labelType)) throw new UsageError(`--label_type takes xml, json or txt, got '${labelType}'`);
    if (encodeType && !['jpg', 'jpeg', 'png'].includes(encodeType.toLowerCase())) {
      throw new UsageError(`--encode_type takes jpg or png, got '${encodeType}'`);
    }
    if (positional.length !== 3) throw new UsageError(`expected ROOTFOLDER/ LISTFILE DB_NAME, got ${positional.length} argument(s)`);
    const [root, list, db] = positional as [string, string, string];
    // The root folder is prefixed to each listed path as written (the fork concatenates them).
    const rootFolder = root === '' ? '' : userPath(root) + (root.endsWith('/') ? '/' : '');
    await convertAnnoset(rootFolder, userPath(list), userPath(db), {
      gray,
      shuffle,
      backend,
      annoType,
      labelType,
      labelMapFile: labelMapFile ? userPath(labelMapFile) : '',
      checkLabel,
      minDim,
      maxDim,
      resizeWidth,
      resizeHeight,
      checkSize,
      encoded,
      encodeType,
    });
    return 0;
  },
};
