import { readFile, writeFile } from 'node:fs/promises';
import { logger } from '@caffe-ts/blob';
import { parseListPairs, readListFile } from './dataset-tool.js';
import { DataError } from './errors.js';
import { decodeImage } from './image-io.js';

const log = logger('get_image_size.ts');

export interface GetImageSizesOptions {
  /**
   * A file of `name id` lines (--name_id_file): each image's name is replaced by its id in the
   * output. It must list every image of the list once.
   */
  nameIdFile?: string;
  /** Images decoded at once (default 8). */
  concurrency?: number;
}

/** One line of the output: the image's name (or id) and its size as read. */
export interface ImageSizeEntry {
  name: string;
  height: number;
  width: number;
}

/** A path's stem as boost::filesystem gives it: the file name without its last extension. */
export function pathStem(path: string): string {
  const name = path.slice(path.lastIndexOf('/') + 1);
  if (name === '.' || name === '..') return name;
  const dot = name.lastIndexOf('.');
  return dot < 0 ? name : name.slice(0, dot);
}

/** `root / path` as boost::filesystem joins them: a separator is added only when neither side has one. */
function joinRoot(root: string, path: string): string {
  if (root === '' || root.endsWith('/') || path.startsWith('/')) return root + path;
  return `${root}/${path}`;
}

async function readNameIds(file: string): Promise<Map<string, string>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new DataError(`Failed to open name_id_file: ${file}${code === 'ENOENT' ? '' : ` (${(e as Error).message})`}`, { cause: e });
  }
  const ids = new Map<string, string>();
  for (const pair of parseListPairs(text, file, 'name id', true)) {
    if (ids.has(pair.first)) throw new DataError(`${file}, line ${pair.line}: image name '${pair.first}' is listed twice`);
    ids.set(pair.first, String(Number.parseInt(pair.second, 10)));
  }
  return ids;
}

/**
 * The SSD fork's `get_image_size [FLAGS] ROOTFOLDER/ LISTFILE OUTFILE`: for each `image other`
 * line of the list (the second field is not read), the image's name (its file name without the
 * extension) or its id from `nameIdFile`, and its height and width as decoded in colour — the
 * `name_size_file` that DetectionEvaluate reads. Writes `outFile` (`name height width` lines, in
 * list order) and returns the entries. Images are read from `rootFolder / path`. An image that
 * cannot be read is a DataError naming it and its list line (the fork would print its previous
 * image's size); so is a name missing from, or a count differing from, the name/id file.
 */
export async function getImageSizes(rootFolder: string, listFile: string, outFile: string, options: GetImageSizesOptions = {}): Promise<ImageSizeEntry[]> {
  const text = await readListFile(listFile);
  const pairs = parseListPairs(text, listFile, 'image annotation');
  log.info(`A total of ${pairs.length} images.`);
  const ids = options.nameIdFile ? await readNameIds(options.nameIdFile) : undefined;
  if (ids && ids.size !== pairs.length) {
    throw new DataError(`${options.nameIdFile} lists ${ids.size} image name(s), but ${listFile} lists ${pairs.length} image(s); they must match`);
  }
  const concurrency = Math.max(1, options.concurrency ?? 8);
  const out: ImageSizeEntry[] = [];
  for (let start = 0; start < pairs.length; start += concurrency) {
    const chunk = pairs.slice(start, start + concurrency);
    const settled = await Promise.allSettled(
      chunk.map(async (pair): Promise<ImageSizeEntry> => {
        const path = joinRoot(rootFolder, pair.first);
        let bytes: Uint8Array;
        try {
          bytes = await readFile(path);
        } catch (e) {
          throw new DataError(`Could not open or find file ${path} (listed at ${listFile}, line ${pair.line})`, { cause: e });
        }
        let img;
        try {
          img = await decodeImage(bytes, 'color', path);
        } catch (e) {
          throw new DataError(`${(e as Error).message} (listed at ${listFile}, line ${pair.line})`, { cause: e });
        }
        const stem = pathStem(path);
        let name = stem;
        if (ids) {
          const id = ids.get(stem);
          if (id === undefined) {
            throw new DataError(`image name '${stem}' (${listFile}, line ${pair.line}) is not in the name_id_file ${options.nameIdFile}`);
          }
          name = id;
        }
        return { name, height: img.height, width: img.width };
      }),
    );
    for (const s of settled) {
      if (s.status === 'rejected') throw s.reason;
      out.push(s.value);
      if (out.length % 1000 === 0) log.info(`Processed ${out.length} files.`);
    }
  }
  if (out.length % 1000 !== 0) log.info(`Processed ${out.length} files.`);
  try {
    await writeFile(outFile, out.map((e) => `${e.name} ${e.height} ${e.width}\n`).join(''));
  } catch (e) {
    throw new DataError(`Failed to open file: ${outFile} (${(e as Error).message})`, { cause: e });
  }
  return out;
}
