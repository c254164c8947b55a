/**
 * End to end: build the playground with Vite, serve the build with `vite preview`, and drive it in
 * Debian's Chromium (headless, through playwright-core: no browser download). The page trains
 * LeNet on the CPU backend (a kernel thread per core: the preview server isolates the page) until
 * the held-out accuracy it shows passes 0.9, predicts a digit drawn with the mouse, saves its
 * weights as a .caffemodel and runs them again through "Run your own model", and runs a few
 * iterations on the gpu.js backend (WebGL through SwiftShader).
 * Screenshots go to apps/playground/test-results/ (gitignored).
 *
 * Skips, saying why, when no Chromium is installed (`apt-get install chromium`; CHROMIUM_PATH
 * picks another binary).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { PreviewServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const appDir = fileURLToPath(new URL('..', import.meta.url));
const rootDir = join(appDir, '..', '..');
const artifacts = join(appDir, 'test-results');

/** The browser binary: CHROMIUM_PATH when set, else Debian's (the launcher script's target first). */
const candidates = process.env.CHROMIUM_PATH ? [process.env.CHROMIUM_PATH] : ['/usr/lib/chromium/chromium', '/usr/bin/chromium'];
const chromiumPath = candidates.find((p) => existsSync(p));
const skipReason = chromiumPath
  ? null
  : `no Chromium at ${candidates.join(' or ')} (install Debian's 'chromium' package, or set CHROMIUM_PATH)`;
if (skipReason) console.warn(`playground end-to-end test skipped: ${skipReason}`);

describe.skipIf(skipReason !== null)(`playground in headless Chromium${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let server: PreviewServer;
  let browser: Browser;
  let page: Page;
  let url: string;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    // Only this run's screenshots and weights.
    rmSync(artifacts, { recursive: true, force: true });
    mkdirSync(artifacts, { recursive: true });
    // A separate process: vitest sets NODE_ENV=test, and a build should see a clean environment.
    const env = { ...process.env };
    delete env.NODE_ENV;
    delete env.VITEST;
    await promisify(execFile)(process.execPath, [join(appDir, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--logLevel', 'warn'], {
      cwd: appDir,
      env,
      maxBuffer: 16 << 20,
    });
    const { preview } = await import('vite');
    server = await preview({ root: appDir, configFile: join(appDir, 'vite.config.ts'), logLevel: 'warn', preview: { host: '127.0.0.1', port: 0, strictPort: false } });
    const port = (server.httpServer.address() as AddressInfo).port;
    url = `http://127.0.0.1:${port}/`;
    browser = await chromium.launch({
      executablePath: chromiumPath!,
      headless: true,
      // WebGL for gpu.js on a machine without a GPU: Chromium's software GL (SwiftShader).
      args: ['--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist', '--no-sandbox'],
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 1100 }, acceptDownloads: true });
    page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(m.text());
    });
    await page.goto(url);
    await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('ready'), null, { timeout: 60_000 });
    // Timeouts here are ceilings for a busy shared machine; on a quiet 2-core one the build takes
    // ~15 s and each test well under 20 s.
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  const screenshot = (name: string) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });

  async function startTraining(backend: 'cpu' | 'gpu', fields: Record<string, number>): Promise<void> {
    await page.check(`input[name=backend][value=${backend}]`);
    for (const [id, value] of Object.entries(fields)) await page.fill(`#${id}`, String(value));
    await page.click('#train');
  }

  it('trains LeNet on the CPU backend until the held-out accuracy passes 0.9, then predicts a drawn digit', async () => {
    await startTraining('cpu', { iterations: 400, batch: 64, 'test-interval': 25, 'test-digits': 500 });
    const handle = await page.waitForFunction(
      () => {
        const error = document.body.dataset['error'];
        if (error) return `error: ${error}`;
        const v = Number(document.getElementById('accuracy')?.dataset['value'] || 0);
        return v > 0.9 ? v : document.body.dataset['training'] === 'no' && v > 0 ? `finished below 0.9: ${v}` : false;
      },
      null,
      { timeout: 150_000, polling: 250 },
    );
    const reached = await handle.jsonValue();
    expect(reached, 'held-out accuracy shown').toBeTypeOf('number');
    expect(reached as number).toBeGreaterThan(0.9);
    await page.click('#stop');
    await page.waitForFunction(() => document.body.dataset['training'] === 'no', null, { timeout: 10_000 });

    expect(await page.getAttribute('#backend-mode', 'data-backend')).toBe('cpu');
    expect(await page.textContent('#backend-mode')).toMatch(/^CPU: wasm-/);
    // The preview server's COOP/COEP headers isolate the page, so the worker trains with a kernel
    // thread per core (one where the browser reports one core).
    expect(await page.evaluate(() => self.crossOriginIsolated)).toBe(true);
    const cores = await page.evaluate(() => navigator.hardwareConcurrency);
    const threads = Number(await page.getAttribute('#backend-mode', 'data-threads'));
    expect(threads).toBe(Math.min(cores, 64));
    expect(await page.textContent('#backend-detail')).toContain(`${threads} kernel thread${threads === 1 ? '' : 's'}`);
    expect(Number(await page.textContent('#iteration'))).toBeGreaterThan(0);
    expect(Number(await page.getAttribute('#filters', 'data-updates'))).toBeGreaterThan(1);
    expect(await page.locator('#filters canvas').count()).toBe(20);
    expect(await page.locator('#loss-chart .u-over').count()).toBe(1);
    await screenshot('cpu-training');

    // A "1": one vertical stroke down the middle of the pad.
    const box = (await page.locator('#pad').boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.52, box.y + box.height * 0.18);
    await page.mouse.down();
    for (let i = 1; i <= 12; i++) await page.mouse.move(box.x + box.width * (0.52 - 0.01 * (i / 12)), box.y + box.height * (0.18 + (0.64 * i) / 12));
    await page.mouse.up();
    await page.waitForSelector('#prediction li', { timeout: 10_000 });
    const top = await page.$$eval('#prediction li', (lis) => lis.map((li) => ({ digit: Number(li.dataset['class']), p: Number(li.dataset['value']) })));
    expect(top).toHaveLength(3);
    expect(top[0]!.p).toBeGreaterThanOrEqual(top[1]!.p);
    expect(top[0]!.digit).toBe(1);
    await screenshot('drawn-digit');

    // The trained weights as a .caffemodel, run again through "Run your own model" on the 28×28
    // picture the pad made: the zoo's deploy LeNet must give the same answer (training has stopped).
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#save-weights')]);
    expect(download.suggestedFilename()).toMatch(/^lenet_iter_\d+\.caffemodel$/);
    const weightsPath = join(artifacts, download.suggestedFilename());
    await download.saveAs(weightsPath);
    // The pad's 28×28 picture, exactly (a PNG of the canvas, not a screenshot of its scaled box).
    const dataUrl = await page.$eval('#pad-small', (c) => (c as HTMLCanvasElement).toDataURL('image/png'));
    const digitPng = Buffer.from(dataUrl.slice(dataUrl.indexOf(',') + 1), 'base64');
    writeFileSync(join(artifacts, 'drawn-digit-28.png'), digitPng);
    await page.setInputFiles('#model-prototxt', join(rootDir, 'packages/zoo/models/lenet/lenet_deploy.prototxt'));
    await page.setInputFiles('#model-weights', weightsPath);
    await page.fill('#model-scale', '0.00390625');
    await page.click('#model-load');
    await page.waitForFunction(() => /weights for 4 layers/.test(document.getElementById('model-info')?.textContent ?? ''), null, { timeout: 10_000 });
    await page.setInputFiles('#model-image', { name: 'digit.png', mimeType: 'image/png', buffer: digitPng });
    await page.waitForSelector('#model-output li', { timeout: 10_000 });
    const again = await page.$$eval('#model-output li', (lis) => lis.map((li) => ({ label: li.querySelector('.name')?.textContent, p: Number(li.dataset['value']) })));
    expect(again[0]!.label).toBe('class 1');
    // The same pixels through the same weights: the same probabilities, to float32 rounding.
    expect(again[0]!.p).toBeCloseTo(top[0]!.p, 4);
    expect(await page.getAttribute('#model-output', 'data-blob')).toBe('prob');
    await screenshot('own-model');
  }, 240_000);

  it('runs a few iterations on the gpu.js backend in WebGL and shows the mode', async () => {
    // gpu.js on SwiftShader compiles a shader per kernel and shape: tiny batches keep this short.
    await startTraining('gpu', { iterations: 3, batch: 2, 'test-interval': 3, 'test-digits': 2 });
    await page.waitForFunction(() => document.body.dataset['training'] === 'no' || document.body.dataset['error'], null, { timeout: 170_000, polling: 250 });
    expect(await page.evaluate(() => document.body.dataset['error'] ?? null)).toBeNull();
    expect(await page.getAttribute('#backend-mode', 'data-backend')).toBe('gpu');
    const mode = await page.getAttribute('#backend-mode', 'data-mode');
    expect(['webgl2', 'webgl']).toContain(mode);
    expect(await page.textContent('#backend-mode')).toBe(`gpu.js: ${mode}`);
    expect(await page.textContent('#iteration')).toBe('3');
    expect(Number(await page.textContent('#loss'))).toBeGreaterThan(0);
    expect(await page.textContent('#status')).toBe('finished at iteration 3');
    await screenshot('gpu-smoke');
    expect(pageErrors).toEqual([]);
  }, 180_000);
});

