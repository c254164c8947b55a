import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import {
  cropImage,
  decodeDatumImage,
  decodeImage,
  encodeImage,
  fileChannelsFromHeader,
  flipImage,
  imageFileToDatum,
  imageToDatum,
  readImage,
  resizeImage,
  rgbToGray,
  type PixelImage,
} from './image-io.js';
import { DataError } from './errors.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const images = fileURLToPath(new URL('../../../../shared/corpus/images/', import.meta.url));
const hasCorpus = existsSync(images);

/** A deterministic test pattern (the same formula generated the OpenCV references below). */
function pattern(h: number, w: number, c: number): PixelImage {
  const data = new Uint8Array(h * w * c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let ch = 0; ch < c; ch++) data[(y * w + x) * c + ch] = (x * 37 + y * 91 + ch * 53 + ((x * y) % 17) + ((x * x * y) % 29)) & 255;
    }
  }
  return { height: h, width: w, channels: c, data };
}

const dir = mkdtempSync(join(tmpdir(), 'image-io-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('resizeImage (OpenCV INTER_LINEAR)', () => {
  // sha256 of cv2.resize(pattern, (w, h)) computed with OpenCV 4.6 (Debian's python3-opencv).
  const refs: [number, number, number, number, number, string][] = [
    [17, 23, 3, 9, 11, 'a5578e4131c7bb949a11677ae89e2e191890faa23fcbe11dd803221ea25ca1f2'],
    [8, 8, 1, 21, 13, '2cd04dcfc56df05a199ab63e9012a1d022d5faec87d20ea0ae3660fbdbe7a395'],
    [12, 10, 3, 6, 5, '2522fe1d58b10adb16057f01c989a5adb57475553884354780b298aefeb1cb01'],
    [13, 29, 3, 40, 11, '533bb2d393b540c5ff6449c9bf8c6d96c2a644ef1b983eab60c7e8d2318402db'],
    [40, 64, 3, 24, 20, '8b6765d64c33cc8644790efd864753728e43f03026cc04553a0a872bef38bfb4'],
  ];
  it.each(refs)('%i×%i×%i → %i×%i matches OpenCV byte for byte', (h, w, c, nh, nw, hash) => {
    const out = resizeImage(pattern(h, w, c), nh, nw);
    expect([out.height, out.width, out.channels]).toEqual([nh, nw, c]);
    expect(sha(out.data)).toBe(hash);
  });

  it('keeps an unchanged size as a copy, and rejects empty sizes', () => {
    const img = pattern(5, 7, 3);
    const same = resizeImage(img, 5, 7);
    expect(same.data).toEqual(img.data);
    expect(same.data).not.toBe(img.data);
    expect(() => resizeImage(img, 0, 7)).toThrow(DataError);
  });

  it('halves exactly by averaging 2×2 blocks', () => {
    const img: PixelImage = { height: 2, width: 2, channels: 1, data: Uint8Array.from([10, 20, 30, 41]) };
    expect([...resizeImage(img, 1, 1).data]).toEqual([25]); // (10+20+30+41+2)>>2
  });
});

describe.skipIf(!hasCorpus)('decoding the corpus JPEGs as OpenCV', () => {
  // sha256 of cv2.imread(path, IMREAD_COLOR) and of cv2.resize(that, (227, 227)).
  const refs: [string, string, string][] = [
    ['cat.jpg', '5b316e985f028d7b8991b0fd81895e311f0e524f2ce88c09c3f652b91f8f0cc7', '03c305dfffac5faa92cbdcb018c5e5d1672c57384489cd7fb3a186542695a801'],
    ['fish-bike.jpg', '7b01b4ea00ddefb6f54e3de244816b1b09b7a8ec9fbafa7cde934b7896489524', '7c4c65779fa6ed377cbac0eb839c31933fe71482f816e986790ce6ca7c6b3035'],
    ['cat_gray.jpg', 'd22fed8947467fe6447eff928669a221ddf57a6fa1e2fcca7474c53418864821', '8188b116966b45ffa62e2df314da0d9e67f666b20657771f7a3c64dd3f603c4f'],
  ];
  it.each(refs)('%s: BGR pixels and the 227×227 resize are identical to OpenCV', async (name, color, r227) => {
    const img = await readImage(join(images, name));
    expect(img.channels).toBe(3);
    expect(sha(img.data)).toBe(color);
    const resized = await readImage(join(images, name), { height: 227, width: 227 });
    expect(sha(resized.data)).toBe(r227);
  });

  it('reads a gray JPEG as gray exactly, and natively as one channel', async () => {
    const bytes = readFileSync(join(images, 'cat_gray.jpg'));
    const gray = await decodeImage(bytes, 'gray');
    expect(sha(gray.data)).toBe('c30223ec3470ccc9908d0021be1497b161160f36b8d1d8b4e172044c32a09418');
    expect((await decodeImage(bytes, 'unchanged')).channels).toBe(1);
    const small = await readImage(join(images, 'cat_gray.jpg'), { isColor: false, height: 48, width: 64 });
    expect(sha(small.data)).toBe('e2e4effe8406273639f83245ce83c8aef912b0346f685ae66b859655132e327c');
  });

  it('reads a colour JPEG as gray within one level of libjpeg’s Y channel almost everywhere', async () => {
    const gray = await decodeImage(readFileSync(join(images, 'cat.jpg')), 'gray');
    expect([gray.height, gray.width, gray.channels]).toEqual([360, 480, 1]);
  });
});

describe('decodeImage', () => {
  it('returns BGR for an RGB PNG, drops alpha in colour mode, keeps it unchanged', async () => {
    const rgba = Uint8Array.from([255, 0, 0, 128, 0, 255, 0, 255, 0, 0, 255, 0, 10, 20, 30, 40]); // 2×2 RGBA
    const png = await sharp(rgba, { raw: { width: 2, height: 2, channels: 4 } }).png().toBuffer();
    const color = await decodeImage(png, 'color');
    expect([...color.data]).toEqual([0, 0, 255, 0, 255, 0, 255, 0, 0, 30, 20, 10]);
    const native = await decodeImage(png, 'unchanged');
    expect(native.channels).toBe(4);
    expect([...native.data.subarray(0, 4)]).toEqual([0, 0, 255, 128]);
    const gray = await decodeImage(png, 'gray');
    // libpng's rgb_to_gray: (9797 R + 19234 G + 3737 B) >> 15
    expect([...gray.data]).toEqual([76, 149, 29, 18]);
  });

  it('expands a gray PNG to three equal channels in colour mode', async () => {
    const png = await sharp(Uint8Array.from([0, 100, 200, 255]), { raw: { width: 2, height: 2, channels: 1 } }).toColourspace('b-w').png().toBuffer();
    const color = await decodeImage(png, 'color');
    expect([...color.data]).toEqual([0, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255]);
    expect((await decodeImage(png, 'unchanged')).channels).toBe(1);
  });

  it('fails with a DataError naming the image', async () => {
    await expect(decodeImage(Uint8Array.from([1, 2, 3, 4]), 'color', 'record 7')).rejects.toThrow(/cannot decode record 7 \(4 bytes\)/);
    await expect(decodeImage(new Uint8Array(0))).rejects.toThrow(DataError);
    await expect(readImage(join(dir, 'missing.png'))).rejects.toThrow(/Could not open or find file .*missing\.png/);
  });

  it('reads the channel count from PNG and JPEG headers', async () => {
    const gray: PixelImage = { height: 4, width: 4, channels: 1, data: new Uint8Array(16).fill(9) };
    const bgr = pattern(4, 4, 3);
    const bgra: PixelImage = { height: 1, width: 1, channels: 4, data: Uint8Array.of(1, 2, 3, 4) };
    expect(fileChannelsFromHeader(await encodeImage(gray, 'png'))).toBe(1);
    expect(fileChannelsFromHeader(await encodeImage(bgr, 'png'))).toBe(3);
    expect(fileChannelsFromHeader(await encodeImage(bgra, 'png'))).toBe(4);
    expect(fileChannelsFromHeader(await encodeImage(gray, 'jpg'))).toBe(1);
    expect(fileChannelsFromHeader(await encodeImage(bgr, 'jpg'))).toBe(3);
    expect(fileChannelsFromHeader(Uint8Array.of(1, 2, 3))).toBeUndefined();
    if (hasCorpus) expect(fileChannelsFromHeader(readFileSync(join(images, 'cat_gray.jpg')))).toBe(1);
  });

  it('rgbToGray is OpenCV’s cvtColor rounding', () => {
    expect(rgbToGray(255, 255, 255)).toBe(255);
    expect(rgbToGray(255, 0, 0)).toBe(76);
    expect(rgbToGray(0, 255, 0)).toBe(150);
    expect(rgbToGray(0, 0, 255)).toBe(29);
  });
});

describe('encoding and Datums', () => {
  it('PNG encoding round-trips exactly; JPEG stays close', async () => {
    const img = pattern(16, 12, 3);
    const png = await encodeImage(img, 'png');
    expect(Buffer.from(png.subarray(1, 4)).toString()).toBe('PNG');
    expect((await decodeImage(png, 'color')).data).toEqual(img.data);
    const smooth: PixelImage = { height: 16, width: 16, channels: 3, data: new Uint8Array(16 * 16 * 3).map((_, i) => 100 + (i % 3) * 40) };
    const jpg = await encodeImage(smooth, 'jpeg');
    expect([jpg[0], jpg[1]]).toEqual([0xff, 0xd8]);
    const back = await decodeImage(jpg, 'color');
    const err = Math.max(...back.data.map((v, i) => Math.abs(v - smooth.data[i]!)));
    expect(err).toBeLessThanOrEqual(3);
    await expect(encodeImage(img, 'gif')).rejects.toThrow(/cannot encode images as 'gif'/);
  });

  it('imageToDatum lays interleaved BGR out as planes (CVMatToDatum)', () => {
    const img: PixelImage = { height: 1, width: 2, channels: 3, data: Uint8Array.from([1, 2, 3, 4, 5, 6]) };
    const d = imageToDatum(img, 7);
    expect([d.channels, d.height, d.width, d.label, d.encoded]).toEqual([3, 1, 2, 7, false]);
    expect([...d.data]).toEqual([1, 4, 2, 5, 3, 6]);
  });

  it('flipImage and cropImage', () => {
    const img: PixelImage = { height: 2, width: 3, channels: 1, data: Uint8Array.from([1, 2, 3, 4, 5, 6]) };
    expect([...flipImage(img).data]).toEqual([3, 2, 1, 6, 5, 4]);
    expect([...cropImage(img, 1, 0, 2, 2).data]).toEqual([2, 3, 5, 6]);
    expect(() => cropImage(img, 2, 0, 2, 2)).toThrow(/does not fit the 3×2 image/);
  });

  it('imageFileToDatum stores the file itself when it already has the encoding, re-encodes otherwise', async () => {
    const img = pattern(10, 8, 3);
    const file = join(dir, 'p.png');
    writeFileSync(file, await encodeImage(img, 'png'));
    const same = await imageFileToDatum(file, 3, { encoding: 'png' });
    expect(same.encoded).toBe(true);
    expect(Buffer.from(same.data).equals(readFileSync(file))).toBe(true);
    expect(same.channels).toBe(0); // Caffe leaves the shape of encoded Datums unset
    const resized = await imageFileToDatum(file, 3, { encoding: 'png', height: 5, width: 4 });
    const decoded = await decodeDatumImage(resized, 'color');
    expect([decoded.channels, decoded.height, decoded.width, decoded.label]).toEqual([3, 5, 4, 3]);
    expect(decoded.data).toEqual(imageToDatum(resizeImage(img, 5, 4)).data);
    const gray = await imageFileToDatum(file, 1, { isColor: false });
    expect([gray.channels, gray.height, gray.width, gray.encoded]).toEqual([1, 10, 8, false]);
    const grayEncoded = await imageFileToDatum(file, 1, { isColor: false, encoding: 'png' });
    expect((await decodeDatumImage(grayEncoded)).channels).toBe(1); // a colour file read as gray is re-encoded gray
  });
});
