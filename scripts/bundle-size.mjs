#!/usr/bin/env node
// Bundles the browser sets of caffe-ts with esbuild (platform 'browser': Node built-ins do not
// resolve, so any `node:*` import reachable from a main entry fails the build) and prints their
// minified and gzipped sizes, with what each package contributes.
//
//   node scripts/bundle-size.mjs [--json] [--out DIR]      (root: pnpm bundle-size)
//
// Sets:
//   inference  proto + blob + layers + net, every built-in layer registered (@caffe-ts/layers/register)
//   training   the same + solver (in-memory solvers; snapshots go to listeners)
// Bundles the packages' dist/ builds (run `pnpm build` first), as an application would get them
// from npm, checks that no package source was bundled instead, and runs a small net through each
// bundle in Node and, when Chromium is installed (/usr/bin/chromium, or CAFFE_TS_CHROMIUM) with
// playwright-core (a dependency of tests/), in headless Chromium. tests/src/browser-bundle.test.ts
// runs LeNet through the inference set in Chromium in the default test run.
// --out writes each bundle to DIR/<set>.min.js. Exits 1 when a set does not bundle or run.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync, brotliCompressSync, constants as zc } from 'node:zlib';
import * as esbuild from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const json = args.includes('--json');
const outIdx = args.indexOf('--out');
const outDir = outIdx >= 0 ? args[outIdx + 1] : undefined;

const SETS = {
  inference: {
    packages: ['proto', 'blob', 'layers', 'net'],
    code: [
      "export * from '@caffe-ts/proto';",
      "export * from '@caffe-ts/blob';",
      "export * from '@caffe-ts/layers';",
      "export * from '@caffe-ts/net';",
      "import '@caffe-ts/layers/register';",
    ],
  },
  training: {
    packages: ['proto', 'blob', 'layers', 'net', 'solver'],
    code: [
      "export * from '@caffe-ts/proto';",
      "export * from '@caffe-ts/blob';",
      "export * from '@caffe-ts/layers';",
      "export * from '@caffe-ts/net';",
      "export * from '@caffe-ts/solver';",
      "import '@caffe-ts/layers/register';",
    ],
  },
};

for (const set of Object.values(SETS)) {
  for (const p of set.packages) {
    if (!existsSync(join(root, 'packages', p, 'dist', 'index.js'))) {
      console.error(`bundle-size: packages/${p}/dist is missing: run 'pnpm build' first`);
      process.exit(1);
    }
  }
}

/** Which package (ours or third-party) an esbuild input path belongs to. */
function owner(path) {
  if (path.endsWith('-entry.js')) return '(entry)';
  const nm = path.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = path.slice(nm + 'node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  const m = /(?:^|\/)packages\/([^/]+)\//.exec(path);
  return m ? `@caffe-ts/${m[1]}` : path;
}

const SMOKE_NET = `
  layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
  layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
          inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
  layer { name: "prob" type: "Softmax" bottom: "y" top: "prob" }`;

/** Runs SMOKE_NET through the bundle's exports `m`; returns the softmax rows' sums. */
function runSmokeNet(m, text) {
  const net = new m.Net(m.parseNetParameter(text), { log: false });
  net.blob('x').mutableCpuData().set([1, 2, 3, -1, 0, 0.5]);
  net.forward();
  const p = net.blob('prob').cpuData();
  return [0, 1].map((n) => p[4 * n] + p[4 * n + 1] + p[4 * n + 2] + p[4 * n + 3]);
}

const checkSums = (sums) => sums.every((s) => Math.abs(s - 1) < 1e-5) || `softmax rows sum to ${sums.join(', ')}`;

/**
 * Load the bundle in Node and run a small net through it, so a bundle that dropped the
 * ./register side effect or broke an import fails here.
 */
async function smokeTest(code) {
  const dir = mkdtempSync(join(tmpdir(), 'caffe-ts-bundle-'));
  try {
    const file = join(dir, 'bundle.mjs');
    writeFileSync(file, code);
    return checkSums(runSmokeNet(await import(pathToFileURL(file).href), SMOKE_NET));
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Headless Chromium through playwright-core, when both are here; else null (and why, in `browserSkip`). */
let browserSkip = null;
async function launchChromium() {
  const exe = process.env.CAFFE_TS_CHROMIUM ?? '/usr/bin/chromium';
  if (!existsSync(exe)) {
    browserSkip = `no Chromium at ${exe}`;
    return null;
  }
  let playwright;
  try {
    playwright = createRequire(join(root, 'tests', 'package.json'))('playwright-core');
  } catch {
    browserSkip = 'playwright-core is not installed (pnpm install)';
    return null;
  }
  return playwright.chromium.launch({ executablePath: exe, headless: true });
}

/** The same smoke run in a page: the bundle imported as an ES module from a blob: URL. */
async function browserSmokeTest(browser, code) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  try {
    const sums = await page.evaluate(
      async ([bundle, text, runSource]) => {
        const url = URL.createObjectURL(new Blob([bundle], { type: 'text/javascript' }));
        const run = (0, eval)(`(${runSource})`);
        return run(await import(url), text);
      },
      [code, SMOKE_NET, String(runSmokeNet)],
    );
    return errors.length ? errors.join('; ') : checkSums(sums);
  } catch (e) {
    return errors.length ? errors.join('; ') : e instanceof Error ? e.message : String(e);
  } finally {
    await page.close();
  }
}

const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
const results = {};
const browser = await launchChromium();
let browserVersion = null;
if (browser) browserVersion = `Chromium ${browser.version()}`;
let failed = false;

for (const [name, set] of Object.entries(SETS)) {
  let result;
  try {
    result = await esbuild.build({
      // Resolve from the solver package: its node_modules links every package of the sets, the
      // way an application's node_modules would. The packages' tsconfig.json files map
      // @caffe-ts/* to sources (for typechecking); an empty tsconfig makes esbuild follow the
      // package.json exports to dist/, as it would in an application.
      tsconfigRaw: {},
      stdin: { contents: set.code.join('\n'), resolveDir: join(root, 'packages', 'solver'), loader: 'js', sourcefile: `${name}-entry.js` },
      bundle: true,
      platform: 'browser',
      format: 'esm',
      target: 'es2022',
      minify: true,
      treeShaking: true,
      metafile: true,
      write: false,
      logLevel: 'silent',
      legalComments: 'none',
    });
  } catch (e) {
    failed = true;
    const errors = (e.errors ?? [{ text: String(e) }]).map((x) => `  ${x.text}${x.location ? ` (${relative(root, x.location.file)}:${x.location.line})` : ''}`);
    console.error(`bundle-size: the ${name} set does not bundle for the browser:\n${errors.join('\n')}`);
    continue;
  }
  const code = result.outputFiles[0].contents;
  const inputs = Object.keys(result.metafile.inputs);
  const fromSource = inputs.filter((p) => /(^|\/)packages\/[^/]+\/src\//.test(p));
  if (fromSource.length > 0) {
    failed = true;
    console.error(`bundle-size: the ${name} set bundled sources instead of dist/: ${fromSource.slice(0, 3).join(', ')}`);
    continue;
  }
  const smoke = await smokeTest(code);
  if (smoke !== true) {
    failed = true;
    console.error(`bundle-size: the ${name} bundle does not run: ${smoke}`);
    continue;
  }
  if (browser) {
    const inBrowser = await browserSmokeTest(browser, code);
    if (inBrowser !== true) {
      failed = true;
      console.error(`bundle-size: the ${name} bundle does not run in ${browserVersion}: ${inBrowser}`);
      continue;
    }
  }
  const gz = gzipSync(code, { level: 9 }).length;
  const br = brotliCompressSync(code, { params: { [zc.BROTLI_PARAM_QUALITY]: 11 } }).length;
  const byPackage = {};
  for (const [path, info] of Object.entries(Object.values(result.metafile.outputs)[0].inputs)) {
    const o = owner(path);
    byPackage[o] = (byPackage[o] ?? 0) + info.bytesInOutput;
  }
  results[name] = {
    packages: set.packages.map((p) => `@caffe-ts/${p}`),
    minified: code.length,
    gzip: gz,
    brotli: br,
    ranIn: browser ? ['node', browserVersion] : ['node'],
    byPackage,
  };
  if (outDir) {
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, `${name}.min.js`), code);
  }
}

await browser?.close();
if (!browser) console.error(`bundle-size: the bundles ran in Node only (${browserSkip})`);

if (json) {
  console.log(JSON.stringify(results, null, 2));
} else {
  for (const [name, r] of Object.entries(results)) {
    console.log(`${name} (${r.packages.join(' + ')}), browser ESM bundle, no Node built-ins:`);
    console.log(`  minified ${kb(r.minified)}, gzip -9 ${kb(r.gzip)}, brotli ${kb(r.brotli)}; a small net ran in ${r.ranIn.join(' and ')}`);
    const rows = Object.entries(r.byPackage).sort((a, b) => b[1] - a[1]);
    for (const [pkg, bytes] of rows) console.log(`    ${pkg.padEnd(24)} ${kb(bytes).padStart(10)} minified`);
  }
}
process.exit(failed ? 1 : 0);
