import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { fillBlob, Rng } from '@caffe-ts/blob';
import '@caffe-ts/layers/register';
import { Net } from '@caffe-ts/net';
import { createMessage, encodeNetParameter, parseNetParameter, Phase } from '@caffe-ts/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, zooDir } from './helpers.js';

/**
 * The inference set (proto + blob + layers + net, every built-in layer registered) bundled for
 * the browser with esbuild — platform 'browser', so a Node built-in anywhere in it fails the
 * build — and run in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core;
 * CAFFE_TS_CHROMIUM names another binary): LeNet from the zoo's deploy prototxt and weights
 * made here as caffemodel bytes, one forward pass in the page, the same probabilities as Node;
 * and the kernel threads in a worker of a cross-origin-isolated page (served here with the
 * COOP/COEP headers). Skipped when Chromium or playwright-core is absent. The bundle is made from the packages'
 * sources, so no build is needed; scripts/bundle-size.mjs bundles their dist/ builds (what an
 * application gets from npm) and reports the size.
 */
const chromiumPath = process.env.CAFFE_TS_CHROMIUM ?? '/usr/bin/chromium';
const require = createRequire(import.meta.url);
const playwrightAt = (() => {
  try {
    return require.resolve('playwright-core');
  } catch {
    return null;
  }
})();
// Each page test takes about a second, but the threads page has twice gone past a minute (a CI
// run at load average 5-6, and a first run on an idle machine; 28 reruns then took a second
// each). A slow page passes; a hung one still fails, saying how far the page's worker got.
const PAGE_TEST_MS = 180_000;
const PAGE_WAIT_MS = 120_000;
/** The kernel-threads page: how long one attempt waits for its worker's result (two attempts at most). */
const THREADS_WAIT_MS = 80_000;
const skip = !existsSync(chromiumPath) ? `no Chromium at ${chromiumPath}` : playwrightAt === null ? 'playwright-core is not installed' : null;

const INFERENCE = ['proto', 'blob', 'layers', 'net'];
const ENTRY = [
  "import * as proto from '@caffe-ts/proto';",
  "import * as blob from '@caffe-ts/blob';",
  "import * as layers from '@caffe-ts/layers';",
  "import * as net from '@caffe-ts/net';",
  "import '@caffe-ts/layers/register';",
  'globalThis.caffe = { ...proto, ...blob, ...layers, ...net };',
].join('\n');

interface EsbuildLike {
  build(options: Record<string, unknown>): Promise<{ outputFiles: { text: string; contents: Uint8Array }[]; metafile: { inputs: Record<string, unknown> } }>;
}

/** esbuild over the sources: `@caffe-ts/<pkg>[/sub]` → packages/<pkg>/src/{index,sub}.ts; no other package of ours may come in. */
async function bundleInferenceSet(): Promise<{ code: string; inputs: string[] }> {
  const esbuild = (await import('esbuild')) as unknown as EsbuildLike;
  const result = await esbuild.build({
    stdin: { contents: ENTRY, resolveDir: repoRoot, loader: 'js', sourcefile: 'inference-entry.js' },
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    minify: true,
    write: false,
    metafile: true,
    logLevel: 'silent',
    tsconfigRaw: {},
    plugins: [
      {
        name: 'caffe-ts-sources',
        setup(build: { onResolve(o: { filter: RegExp }, cb: (a: { path: string }) => { path: string } | { errors: { text: string }[] }): void }) {
          build.onResolve({ filter: /^@caffe-ts\// }, (args) => {
            const m = /^@caffe-ts\/([^/]+)(?:\/(.+))?$/.exec(args.path)!;
            const pkg = m[1]!;
            if (!INFERENCE.includes(pkg)) return { errors: [{ text: `${args.path} is not in the inference set (${INFERENCE.join(', ')})` }] };
            return { path: join(repoRoot, 'packages', pkg, 'src', `${m[2] ?? 'index'}.ts`) };
          });
        },
      },
    ],
  });
  return { code: result.outputFiles[0]!.text, inputs: Object.keys(result.metafile.inputs) };
}

/** The zoo's LeNet deploy net with seeded Xavier weights, as caffemodel bytes, and its output for `pixels` in Node. */
function lenetInNode(prototxt: string, pixels: Float32Array): { weights: Uint8Array; prob: number[] } {
  const net = new Net(parseNetParameter(prototxt), { phase: Phase.TEST, log: false });
  const rng = new Rng(1701);
  const xavier = createMessage('FillerParameter', { type: 'xavier' });
  const bias = createMessage('FillerParameter', { type: 'constant', value: 0.01 });
  for (const [, blobs] of net.params) {
    fillBlob(blobs[0]!, xavier, rng);
    if (blobs[1]) fillBlob(blobs[1], bias, rng);
  }
  const weights = encodeNetParameter(net.toProto());
  net.blob('data').mutableCpuData().set(pixels);
  net.forward();
  return { weights, prob: Array.from(net.blob('prob').cpuData()) };
}

/** The MNIST "7" of the consumer tests (a 28×28 binary PGM), scaled as LeNet was trained: pixel / 256. */
function digit(): Float32Array {
  const bytes = readFileSync(join(repoRoot, 'tests/consumer/inference/digit-7.pgm'));
  const header = /^P5\s+28\s+28\s+255\s/.exec(bytes.subarray(0, 20).toString('latin1'))!;
  return Float32Array.from(bytes.subarray(header[0].length), (v) => v * 0.00390625);
}

interface PageResult {
  prob: number[];
  layers: string[];
  wasmGemm: boolean;
  userAgent: string;
}

describe.skipIf(skip !== null)(`the inference bundle in headless Chromium${skip ? ` (skipped: ${skip})` : ''}`, () => {
  type Browser = { newPage(): Promise<Page>; close(): Promise<void> };
  type Page = {
    on(event: string, cb: (x: { message?: string; type?(): string; text?(): string }) => void): void;
    addScriptTag(o: { content: string; type: string }): Promise<unknown>;
    waitForFunction(fn: string, arg?: unknown, options?: { timeout: number }): Promise<unknown>;
    evaluate<R, A>(fn: (a: A) => R | Promise<R>, arg: A): Promise<R>;
  };
  let browser: Browser | undefined;
  const problems: string[] = [];
  let bundle: { code: string; inputs: string[] };

  beforeAll(async () => {
    const { chromium } = (await import('playwright-core')) as unknown as {
      chromium: { launch(o: Record<string, unknown>): Promise<Browser> };
    };
    [bundle, browser] = await Promise.all([bundleInferenceSet(), chromium.launch({ executablePath: chromiumPath, headless: true })]);
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('bundles without Node built-ins and only from the inference packages', () => {
    const ours = new Set(bundle.inputs.map((p) => /packages\/([^/]+)\/src\//.exec(p)?.[1]).filter((p) => p !== undefined));
    expect([...ours].sort()).toEqual([...INFERENCE].sort());
    expect(bundle.inputs.filter((p) => p.startsWith('node:'))).toEqual([]);
    const gz = gzipSync(bundle.code, { level: 9 }).length;
    console.log(`inference bundle from sources: ${(bundle.code.length / 1024).toFixed(1)} KiB minified, ${(gz / 1024).toFixed(1)} KiB gzip -9`);
  });

  it("runs LeNet (zoo prototxt, caffemodel bytes) in the page with Node's probabilities", async () => {
    const prototxt = readFileSync(join(zooDir, 'lenet/lenet_deploy.prototxt'), 'utf8');
    const pixels = digit();
    const node = lenetInNode(prototxt, pixels);

    const page = await browser!.newPage();
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type?.() === 'error') problems.push(`console error: ${m.text?.()}`);
    });
    await page.addScriptTag({ content: bundle.code, type: 'module' });
    await page.waitForFunction('globalThis.caffe !== undefined', undefined, { timeout: PAGE_WAIT_MS });
    const inPage = await page.evaluate(
      ({ prototxt, weights, pixels }) => {
        type Api = {
          Net: new (p: unknown, o: unknown) => {
            copyTrainedLayersFrom(p: unknown): void;
            blob(n: string): { mutableCpuData(): Float32Array; cpuData(): Float32Array };
            forward(): number;
            layerNames: string[];
          };
          parseNetParameter(t: string): unknown;
          decodeNetParameter(b: Uint8Array): unknown;
          Phase: { TEST: number };
          wasmGemmInfo?: () => { simd: boolean };
        };
        const caffe = (globalThis as unknown as { caffe: Api }).caffe;
        const bytes = Uint8Array.from(atob(weights), (c) => c.charCodeAt(0));
        const net = new caffe.Net(caffe.parseNetParameter(prototxt), { phase: caffe.Phase.TEST, log: false });
        net.copyTrainedLayersFrom(caffe.decodeNetParameter(bytes));
        net.blob('data').mutableCpuData().set(pixels);
        net.forward();
        return {
          prob: Array.from(net.blob('prob').cpuData()),
          layers: net.layerNames,
          wasmGemm: caffe.wasmGemmInfo?.().simd ?? false,
          userAgent: navigator.userAgent,
        } satisfies PageResult;
      },
      { prototxt, weights: Buffer.from(node.weights).toString('base64'), pixels: Array.from(pixels) },
    );
    expect(problems).toEqual([]);
    expect(inPage.userAgent).toMatch(/HeadlessChrome/);
    expect(inPage.wasmGemm, "the bundle's WebAssembly SIMD GEMM compiles in the page").toBe(true);
    expect(inPage.layers).toEqual(['data', 'conv1', 'pool1', 'conv2', 'pool2', 'ip1', 'relu1', 'ip2', 'prob']);
    expect(inPage.prob).toHaveLength(10);
    const worst = Math.max(...inPage.prob.map((p, k) => Math.abs(p - node.prob[k]!)));
    expect(worst, `page ${inPage.prob.join(' ')}\nnode ${node.prob.join(' ')}`).toBeLessThan(1e-6);
  }, PAGE_TEST_MS);

  it('runs kernel threads in a cross-origin-isolated page: a worker of the page multiplies on two threads, bit for bit as on one', async () => {
    // Shared memory needs the page isolated (COOP/COEP), and the thread that waits for the kernel
    // workers must be allowed to block: a worker of the page, not the page itself.
    const isolation = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
    const files: Record<string, [string, string]> = {
      '/': ['text/html', `<!doctype html><script type="module">
        const w = new Worker('/worker.js', { type: 'module' });
        globalThis.stages = [];
        w.onmessage = (e) => {
          if (e.data.stage) globalThis.stages.push(e.data.stage + ' at ' + Math.round(performance.now()) + ' ms');
          else globalThis.result = e.data;
        };
        w.onerror = (e) => { globalThis.result = { error: e.message }; };
      </script>`],
      '/bundle.js': ['text/javascript', bundle.code],
      '/worker.js': ['text/javascript', `import './bundle.js';
        const c = globalThis.caffe;
        const out = { isolated: self.crossOriginIsolated };
        try {
          postMessage({ stage: 'bundle loaded' });
          out.threads = await c.initThreads(2, { timeoutMs: ${THREADS_WAIT_MS - 20_000} });
          postMessage({ stage: 'kernel threads ready' });
          out.pool = c.threadPoolInfo();
          const k = c.createWasmGemmKernel();
          const M = 200, N = 300, K = 150;
          const A = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i));
          const B = Float32Array.from({ length: K * N }, (_, i) => Math.cos(i * 0.7));
          const product = (threads) => { c.setNumThreads(threads); const C = new Float32Array(M * N); k(false, false, M, N, K, 1, A, B, 0, C); return C; };
          const one = product(1);
          const before = c.threadPoolInfo().workerLists;
          let two = product(2), same = two.every((v, i) => Object.is(v, one[i]));
          for (let r = 0; r < 200 && c.threadPoolInfo().workerLists === before; r++) {
            two = product(2);
            same &&= two.every((v, i) => Object.is(v, one[i]));
          }
          out.same = same;
          postMessage({ stage: 'products done' });
          out.workerLists = c.threadPoolInfo().workerLists - before;
        } catch (e) {
          out.error = String(e && e.stack || e);
        }
        postMessage(out);`],
    };
    const { createServer } = await import('node:http');
    const server = createServer((req, res) => {
      const file = files[req.url ?? ''];
      res.writeHead(file ? 200 : 404, { ...isolation, 'Content-Type': file?.[0] ?? 'text/plain' });
      res.end(file?.[1] ?? 'not found');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    /** One page: its worker's result, or an error saying how far the worker got. */
    const attempt = async (): Promise<Record<string, unknown>> => {
      const page = (await browser!.newPage()) as Page & { goto(url: string): Promise<unknown>; close(): Promise<void> };
      try {
        page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
        await page.goto(`http://127.0.0.1:${(server.address() as { port: number }).port}/`);
        await page.waitForFunction('globalThis.result !== undefined', undefined, { timeout: THREADS_WAIT_MS }).catch(async (e: unknown) => {
          // Say how far the worker got (the stages it reported, with the page's clock).
          const stages = await page.evaluate(() => (globalThis as unknown as { stages?: string[] }).stages ?? [], null).catch(() => ['(page gone)']);
          throw new Error(`no result from the page's worker; its stages: ${stages.length ? stages.join(', ') : 'none'} (${String(e)})`);
        });
        const result = await page.evaluate(() => (globalThis as unknown as { result: Record<string, unknown> }).result, null);
        // A kernel worker that did not start in time leaves initThreads with one thread.
        if (result.error !== undefined || result.threads !== 2) throw new Error(`the page's worker reported ${JSON.stringify(result)}`);
        return result;
      } finally {
        await page.close().catch(() => {});
      }
    };
    try {
      let result: Record<string, unknown>;
      try {
        result = await attempt();
      } catch (e) {
        // A worker of a page can stall on a machine this busy (two Chromiums, the test forks, two
        // cores): say so, and try once more in a fresh page.
        console.warn(`kernel-threads page, first attempt: ${String(e)}`);
        result = await attempt();
      }
      expect(result.error).toBeUndefined();
      expect(result).toMatchObject({ isolated: true, threads: 2, pool: { supported: true, active: 2, reason: null }, same: true });
      expect(result.workerLists as number, 'the kernel worker ran part of the products').toBeGreaterThan(0);
      expect(problems).toEqual([]);
    } finally {
      // Sockets the browser still holds (a stalled worker's request, connections opened ahead)
      // would keep close() waiting: end them.
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  }, 2 * THREADS_WAIT_MS + 40_000);
});
