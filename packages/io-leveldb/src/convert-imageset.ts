import { globalRng, logger, type Rng } from '@caffe-ts/blob';
import { encodeDatum, type Datum } from '@caffe-ts/proto';
import { readListFile, shuffleInPlace, guessEncoding, writeImageRecords } from './dataset-tool.js';
import { parseDbBackend, type DbBackend } from './datum-db.js';
import { DataError } from './errors.js';
import { imageFileToDatum } from './image-io.js';
import { parseImageList, type ImageListEntry } from './image-list.js';

const log = logger('convert_imageset.ts');

export interface ConvertImagesetOptions {
  /** Read the images as gray (Caffe's --gray). */
  gray?: boolean;
  /** Shuffle the list first (--shuffle), with `rng` (default: the global generator). */
  shuffle?: boolean;
  rng?: Rng;
  /** Default 'lmdb', as Caffe's tool. */
  backend?: DbBackend;
  /** Resize every image to resizeHeight × resizeWidth (both must be positive to resize). */
  resizeWidth?: number;
  resizeHeight?: number;
  /** Check that every raw Datum has the first one's size (--check_size). */
  checkSize?: boolean;
  /** Store the images encoded (--encoded): as their files when possible, else encoded as encodeType. */
  encoded?: boolean;
  /** 'jpg' or 'png' (--encode_type); implies encoded. Empty: guess from each file's extension. */
  encodeType?: string;
  /** Replace an existing database (default false: refuse, as Caffe's db::NEW). */
  overwrite?: boolean;
  /** Images decoded at once (default 8). */
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface ConvertImagesetResult {
  dbPath: string;
  /** Records written. */
  count: number;
  /** List lines whose image could not be read (logged and skipped, as Caffe). */
  skipped: string[];
}

/**
 * Caffe's `convert_imageset ROOTFOLDER/ LISTFILE DB_NAME`: each `path label` line of the list
 * becomes a Datum (raw planar BGR pixels, or the encoded image with `encoded`) under the key
 * `%08d_<path>` (the line's index, even when earlier images were skipped). Images are read from
 * `rootFolder + path` (plain concatenation: give the folder with its trailing slash), in colour or
 * gray, resized with INTER_LINEAR when both sizes are given. Images that cannot be read are
 * logged and skipped. The database is written under a temporary name and renamed when complete.
 */
export async function convertImageset(
  rootFolder: string,
  listFile: string,
  dbPath: string,
  options: ConvertImagesetOptions = {},
): Promise<ConvertImagesetResult> {
  const backend = parseDbBackend(options.backend ?? 'lmdb');
  const text = await readListFile(listFile);
  const lines: ImageListEntry[] = parseImageList(text, listFile);
  if (options.shuffle) {
    log.info('Shuffling data');
    shuffleInPlace(lines, options.rng ?? globalRng());
  }
  log.info(`A total of ${lines.length} images.`);
  const encodeType = (options.encodeType ?? '').toLowerCase();
  if (encodeType && !options.encoded) log.info('encode_type specified, assuming encoded=true.');
  const encoded = options.encoded || encodeType.length > 0;
  const height = Math.max(0, options.resizeHeight ?? 0);
  const width = Math.max(0, options.resizeWidth ?? 0);
  const isColor = !options.gray;

  const { count, skipped } = await writeImageRecords(
    dbPath,
    lines,
    { backend, overwrite: options.overwrite, checkSize: options.checkSize, concurrency: options.concurrency, onProgress: options.onProgress, log },
    async (entry) => {
      const enc = encoded ? encodeType || guessEncoding(entry.path, log) : '';
      let datum: Datum;
      try {
        datum = await imageFileToDatum(rootFolder + entry.path, entry.label, { height, width, isColor, encoding: enc });
      } catch (e) {
        if (!DataError.isInstance(e)) throw e;
        log.error(e.message);
        return null;
      }
      return { value: encodeDatum(datum), datum };
    },
  );
  return { dbPath, count, skipped };
}
