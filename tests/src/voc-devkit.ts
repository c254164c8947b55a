/*
 * A generated VOC devkit for the Faster R-CNN tests: 96 × 64 JPEGs of two coloured blocks (an
 * aeroplane and a bicycle, VOC's classes 1 and 2) on noise, VOC XML with 1-based corners, and an
 * image set. The small nets of layers-contrib's testing/tiny-faster-rcnn-train.ts learn it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '@caffe-ts/blob';
import { encodeImage } from '@caffe-ts/io-leveldb';

const H = 64, W = 96;
// The small net has 3 classes: VOC's first two, aeroplane (1) and bicycle (2), with the background.

/**
 * Writes into the devkit's year folder `dir` images `first` + 1 … `first` + `count` (JPEGImages,
 * Annotations; the blocks move with the image number) and lists them in ImageSets/Main/<imageSet>.txt.
 * Returns their indices.
 */
export async function writeVocDevkit(
  dir: string,
  { first = 0, count = 4, imageSet = 'trainval', seed = 31 }: { first?: number; count?: number; imageSet?: string; seed?: number } = {},
): Promise<string[]> {
  for (const sub of ['JPEGImages', 'Annotations', 'ImageSets/Main']) mkdirSync(join(dir, sub), { recursive: true });
  const rng = new Rng(seed);
  const ids: string[] = [];
  for (let n = first; n < first + count; n++) {
    const id = String(n + 1).padStart(6, '0');
    ids.push(id);
    const bgr = new Uint8Array(H * W * 3);
    for (let i = 0; i < H * W; i++) bgr.fill(110 + rng.int(30), 3 * i, 3 * i + 3);
    // 1-based inclusive corners, as VOC writes them.
    const cat = [5 + 6 * n, 7, 5 + 6 * n + 29, 7 + 27];
    const dog = [61 - 4 * n, 31, 61 - 4 * n + 31, 31 + 29];
    for (const [box, colour] of [[cat, [30, 30, 220]], [dog, [40, 200, 30]]] as const) {
      for (let y = box[1]! - 1; y < box[3]!; y++) for (let x = box[0]! - 1; x < box[2]!; x++) bgr.set(colour, 3 * (y * W + x));
    }
    writeFileSync(join(dir, 'JPEGImages', `${id}.jpg`), await encodeImage({ height: H, width: W, channels: 3, data: bgr }, 'jpg'));
    const object = (name: string, b: readonly number[]) =>
      `<object><name>${name}</name><difficult>0</difficult><bndbox><xmin>${b[0]}</xmin><ymin>${b[1]}</ymin><xmax>${b[2]}</xmax><ymax>${b[3]}</ymax></bndbox></object>`;
    writeFileSync(
      join(dir, 'Annotations', `${id}.xml`),
      `<annotation><size><width>${W}</width><height>${H}</height><depth>3</depth></size>${object('aeroplane', cat)}${object('Bicycle ', dog)}</annotation>`,
    );
  }
  writeFileSync(join(dir, 'ImageSets/Main', `${imageSet}.txt`), `${ids.join('\n')}\n`);
  return ids;
}
