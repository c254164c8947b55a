// Development only (not shipped): lets a worker thread run the TypeScript sources of the
// workspace, as vitest does for the calling thread. `@caffe-ts/<pkg>[/<sub>]` maps to
// packages/<pkg>/src/<sub or index>.ts, a relative `.js` that does not exist maps to its `.ts`,
// and `.ts` files are compiled with esbuild.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { transform } from 'esbuild';

const packagesDir = new URL('../../../../', import.meta.url);

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
    const url = sourceFile(m[1], m[2]);
    if (url) return { url, shortCircuit: true };
  }
  if (/^\.\.?\//.test(specifier) && specifier.endsWith('.js') && context.parentURL?.endsWith('.ts')) {
    const js = new URL(specifier, context.parentURL);
    if (!existsSync(js)) return { url: js.href.replace(/\.js$/, '.ts'), shortCircuit: true };
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (url.startsWith('file:') && url.endsWith('.ts')) {
    const path = fileURLToPath(url);
    const source = await readFile(path, 'utf8');
    const out = await transform(source, { loader: 'ts', format: 'esm', target: 'node20', sourcefile: path, sourcemap: 'inline' });
    return { format: 'module', source: out.code, shortCircuit: true };
  }
  return next(url, context);
}

