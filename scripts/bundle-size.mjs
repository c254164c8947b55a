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
// bundle (in Node for now; a headless browser run comes later). --out writes each bundle to DIR/<set>.min.js. Exits 1 when a set does not bundle.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

/**
 * Load the bundle (in Node: a stand-in until it runs in a headless browser) and run a small net
 * through it, so a bundle that dropped the ./register side effect or broke an import fails here.
 */
async function smokeTest(code) {
  const dir = mkdtempSync(join(tmpdir(), 'caffe-ts-bundle-'));
  try {
    const file = join(dir, 'bundle.mjs');
    writeFileSync(file, code);
    const m = await import(pathToFileURL(file).href);
    const net = new m.Net(
      m.parseNetParameter(`
        layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
        layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
                inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
        layer { name: "prob" type: "Softmax" bottom: "y" top: "prob" }`),
      { log: false },
    );
    net.blob('x').mutableCpuData().set([1, 2, 3, -1, 0, 0.5]);
    net.forward();
    const p = net.blob('prob').cpuData();
    for (let n = 0; n < 2; n++) {
      const sum = p[4 * n] + p[4 * n + 1] + p[4 * n + 2] + p[4 * n + 3];
      if (!(Math.abs(sum - 1) < 1e-5)) return `softmax row ${n} sums to ${sum}`;
    }
    return true;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
const results = {};
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
  const gz = gzipSync(code, { level: 9 }).length;
  const br = brotliCompressSync(code, { params: { [zc.BROTLI_PARAM_QUALITY]: 11 } }).length;
  const byPackage = {};
  for (const [path, info] of Object.entries(Object.values(result.metafile.outputs)[0].inputs)) {
    const o = owner(path);
    byPackage[o] = (byPackage[o] ?? 0) + info.bytesInOutput;
  }
  results[name] = { packages: set.packages.map((p) => `@caffe-ts/${p}`), minified: code.length, gzip: gz, brotli: br, byPackage };
  if (outDir) {
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, `${name}.min.js`), code);
  }
}

if (json) {
  console.log(JSON.stringify(results, null, 2));
} else {
  for (const [name, r] of Object.entries(results)) {
    console.log(`${name} (${r.packages.join(' + ')}), browser ESM bundle, no Node built-ins:`);
    console.log(`  minified ${kb(r.minified)}, gzip -9 ${kb(r.gzip)}, brotli ${kb(r.brotli)}`);
    const rows = Object.entries(r.byPackage).sort((a, b) => b[1] - a[1]);
    for (const [pkg, bytes] of rows) console.log(`    ${pkg.padEnd(24)} ${kb(bytes).padStart(10)} minified`);
  }
}
process.exit(failed ? 1 : 0);
