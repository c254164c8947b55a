import { existsSync } from 'node:fs';
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import { DataError } from './errors.js';

/** One line of an image list: `path label`. */
export interface ImageListEntry {
  path: string;
  label: number;
}

/**
 * Parse an image list as Caffe's ImageData layer and convert_imageset do: on each line the label
 * follows the last space, and everything before it is the path (so paths may contain spaces).
 * Blank lines are skipped (Caffe would take them as an empty path); a label that is not an
 * integer is a DataError naming the line.
 */
export function parseImageList(text: string, name = '<list>'): ImageListEntry[] {
  const out: ImageListEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line.trim() === '') continue;
    const pos = line.lastIndexOf(' ');
    const path = pos >= 0 ? line.slice(0, pos) : line;
    const labelText = line.slice(pos + 1);
    if (!/^\s*[+-]?\d+/.test(labelText) || pos < 0) {
      throw new DataError(`${name}, line ${i + 1}: expected 'path label', found '${line}'`);
    }
    out.push({ path, label: Number.parseInt(labelText, 10) });
  }
  return out;
}

/**
 * Where an image named in a list is read from: `root_folder + path` (concatenated, as Caffe does),
 * from the working directory; when that does not exist and the net came from a file, beside it.
 */
export function resolveImagePath(rootFolder: string, path: string, netFile?: string): string {
  const joined = rootFolder + path;
  if (isAbsolute(joined)) return joined;
  const here = resolvePath(joined);
  if (netFile && !existsSync(here)) {
    const beside = resolvePath(dirname(resolvePath(netFile)), joined);
    if (existsSync(beside)) return beside;
  }
  return here;
}
