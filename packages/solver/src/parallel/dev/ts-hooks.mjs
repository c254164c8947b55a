// Development only (not shipped): lets a worker thread (or a test's child process) import the
// workspace packages while they run from TypeScript sources. `@caffe-ts/<pkg>[/<sub>]` maps to
// the dev bundle's entry when `initialize` got a bundle folder and the bundle has it (so plugins
// share the worker's module instances), else to packages/<pkg>/src/<sub or index>.ts; a relative
// `.js` that does not exist maps to its `.ts`, and `.ts` files are compiled with esbuild.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { entryFor } from './bundle.mjs';

const packagesDir = new URL('../../../../', import.meta.url);
let bundleDir = null;

export function initialize(data) {
  bundleDir = data?.bundleDir ?? null;
}

function sourceFile(pkg, sub) {
  const dir = new URL(`${pkg}/src/`, packagesDir);
  if (!existsSync(dir)) return null;
  for (const candidate of sub ? [`${sub}.ts`, `${sub}/index.ts`, sub] : ['index.ts']) {
    const url = new URL(candidate, dir);
    if (existsSync(url)) return url.href;
  }
  return null;
}

export async function resolve(specifier, context, next) {
  const m = /^@caffe-ts\/([^/]+)(?:\/(.+))?$/.exec(specifier);
  if (m) {
    const entry = bundleDir ? entryFor(specifier) : null;
    if (entry) return { url: pathToFileURL(`${bundleDir}/${entry}.js`).href, shortCircuit: true };
    const url = sourceFile(m[1], m[2]);
    if (url) return { url, shortCircuit: true };
  }
  if (/^\.\.?\//.test(specifier) && specifier.endsWith('.js') && context.parentURL?.endsWith('.ts')) {
    const js = new URL(specifier, context.parentURL);
    if (!existsSync(js)) return { url: js.href.replace(/\.js$/, '.ts'), shortCircuit: true };
  }
  return next(specifier, context);
}

let esbuild = null;

export async function load(url, context, next) {
  if (url.startsWith('file:') && url.endsWith('.ts')) {
    const path = fileURLToPath(url);
    const source = await readFile(path, 'utf8');
    esbuild ??= await import('esbuild');
    const out = await esbuild.transform(source, { loader: 'ts', format: 'esm', target: 'node20', sourcefile: path, sourcemap: 'inline' });
    return { format: 'module', source: out.code, shortCircuit: true };
  }
  return next(url, context);
}
