import { readFile } from 'node:fs/promises';
import { globalRng, logger, type Rng } from '@caffe-ts/blob';
import { encodeDatum, type Datum } from '@caffe-ts/proto';
import { formatKey, parseDbBackend, type DbBackend } from './datum-db.js';
import { writeDbAtomically } from './db-write.js';
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

function fileEncoding(path: string): string {
  const dot = path.lastIndexOf('.');
  if (dot < 0) {
    log.warn(`Failed to guess the encoding of '${path}'`);
    return path.toLowerCase();
  }
  return path.slice(dot + 1).toLowerCase();
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
  let text: string;
  try {
    text = await readFile(listFile, 'utf8');
  } catch (e) {
    throw new DataError(`cannot read the image list ${listFile}: ${(e as { code?: string }).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, { cause: e });
  }
  const lines: ImageListEntry[] = parseImageList(text, listFile);
  if (options.shuffle) {
    log.info('Shuffling data');
    const rng = options.rng ?? globalRng();
    for (let i = lines.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [lines[i], lines[j]] = [lines[j]!, lines[i]!];
    }
  }
  log.info(`A total of ${lines.length} images.`);
  const encodeType = (options.encodeType ?? '').toLowerCase();
  if (encodeType && !options.encoded) log.info('encode_type specified, assuming encoded=true.');
  const encoded = options.encoded || encodeType.length > 0;
  const height = Math.max(0, options.resizeHeight ?? 0);
  const width = Math.max(0, options.resizeWidth ?? 0);
  const isColor = !options.gray;
  const concurrency = Math.max(1, options.concurrency ?? 8);

  let count = 0;
  const skipped: string[] = [];
  let dataSize = -1;
  await writeDbAtomically(dbPath, { backend, overwrite: options.overwrite }, async (writer) => {
    for (let start = 0; start < lines.length; start += concurrency) {
      const chunk = lines.slice(start, start + concurrency);
      // Decode a few images at once; write them in list order.
      const datums = await Promise.all(
        chunk.map(async (entry): Promise<Datum | null> => {
          const enc = encoded ? encodeType || fileEncoding(entry.path) : '';
          try {
            return await imageFileToDatum(rootFolder + entry.path, entry.label, { height, width, isColor, encoding: enc });
          } catch (e) {
            if (!DataError.isInstance(e)) throw e;
            log.error(e.message);
            return null;
          }
        }),
      );
      for (let k = 0; k < chunk.length; k++) {
        const lineId = start + k;
        const datum = datums[k];
        if (!datum) {
          skipped.push(chunk[k]!.path);
          continue;
        }
        if (options.checkSize && !datum.encoded) {
          const size = datum.channels * datum.height * datum.width;
          if (dataSize < 0) dataSize = size;
          else if (datum.data.length !== dataSize) {
            throw new DataError(`Incorrect data field size ${datum.data.length} (image ${chunk[k]!.path}; the first image's is ${dataSize})`);
          }
        }
        await writer.put(`${formatKey(lineId, 8)}_${chunk[k]!.path}`, encodeDatum(datum));
        if (++count % 1000 === 0) log.info(`Processed ${count} files.`);
      }
      options.onProgress?.(Math.min(start + concurrency, lines.length), lines.length);
    }
    await writer.flush();
    if (count % 1000 !== 0) log.info(`Processed ${count} files.`);
  });
  return { dbPath, count, skipped };
}
