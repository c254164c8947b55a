import { UsageError, type Flags } from '../args.js';
import { userPath } from '../paths.js';

/** The flags convert_imageset and the SSD fork's convert_annoset share, read and checked. */
export interface ImageSetFlags {
  gray: boolean;
  shuffle: boolean;
  backend: 'lmdb' | 'leveldb';
  resizeWidth: number;
  resizeHeight: number;
  checkSize: boolean;
  encoded: boolean;
  encodeType: string;
}

export function imageSetFlags(flags: Flags): ImageSetFlags {
  const backend = (flags.string('backend', 'lmdb') ?? 'lmdb').toLowerCase();
  if (backend !== 'leveldb' && backend !== 'lmdb') throw new UsageError(`Invalid db backend ${backend} (expected lmdb or leveldb)`);
  const encodeType = flags.string('encode_type', '') ?? '';
  if (encodeType && !['jpg', 'jpeg', 'png'].includes(encodeType.toLowerCase())) {
    throw new UsageError(`--encode_type takes jpg or png, got '${encodeType}'`);
  }
  return {
    gray: flags.bool('gray'),
    shuffle: flags.bool('shuffle'),
    backend,
    resizeWidth: flags.int('resize_width', 0),
    resizeHeight: flags.int('resize_height', 0),
    checkSize: flags.bool('check_size'),
    encoded: flags.bool('encoded'),
    encodeType,
  };
}

/**
 * The ROOTFOLDER/ LISTFILE DB arguments (`dbName` as the usage names the third), resolved against
 * the user's directory. The root folder is prefixed to each listed path as written (Caffe
 * concatenates them), so its trailing slash is kept.
 */
export function imageSetPaths(positional: readonly string[], dbName: string): { root: string; list: string; db: string } {
  if (positional.length !== 3) throw new UsageError(`expected ROOTFOLDER/ LISTFILE ${dbName}, got ${positional.length} argument(s)`);
  const [root, list, db] = positional as [string, string, string];
  return { root: root === '' ? '' : userPath(root) + (root.endsWith('/') ? '/' : ''), list: userPath(list), db: userPath(db) };
}
