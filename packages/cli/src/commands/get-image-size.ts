import { getImageSizes } from '@caffe-ts/io-leveldb';
import { UsageError } from '../args.js';
import { userPath } from '../paths.js';
import type { Command } from './index.js';

/** The SSD fork's get_image_size: the `name height width` file (name_size_file) DetectionEvaluate reads. */
export const getImageSizeCommand: Command = {
  summary: 'write "name height width" for each listed image, the name_size_file of DetectionEvaluate (the SSD fork\'s get_image_size)',
  usage: 'ROOTFOLDER/ LISTFILE OUTFILE [--name_id_file FILE]',
  async run({ flags, positional }) {
    const nameIdFile = flags.string('name_id_file', '') ?? '';
    flags.checkAllUsed();
    if (positional.length !== 3) throw new UsageError(`expected ROOTFOLDER/ LISTFILE OUTFILE, got ${positional.length} argument(s)`);
    const [root, list, out] = positional as [string, string, string];
    // Joined as paths (root / image), as the fork does: the trailing slash is optional here.
    const rootFolder = root === '' ? '' : userPath(root) + (root.endsWith('/') ? '/' : '');
    await getImageSizes(rootFolder, userPath(list), userPath(out), nameIdFile ? { nameIdFile: userPath(nameIdFile) } : {});
    return 0;
  },
};
