// Writes the identical skeleton every package shares (package.json is written only when absent).
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
const [name, description, ...entries] = process.argv.slice(2);
const dir = `packages/${name}`;
mkdirSync(`${dir}/src`, { recursive: true });
const extra = entries.filter((e) => e !== 'index');
if (!existsSync(`${dir}/package.json`)) {
  const exp = { '.': { types: './dist/index.d.ts', import: './dist/index.js' } };
  for (const e of extra) exp[`./${e}`] = { types: `./dist/${e}.d.ts`, import: `./dist/${e}.js` };
  writeFileSync(`${dir}/package.json`, JSON.stringify({
    name: `@caffe-ts/${name}`, version: '0.1.0', description, license: 'BSD-2-Clause', type: 'module',
    exports: exp, main: './dist/index.js', types: './dist/index.d.ts',
    files: ['dist', 'README.md'], sideEffects: extra.includes('register') ? ['./dist/register.js'] : false,
    engines: { node: '>=20' },
    scripts: { build: 'tsup', typecheck: 'tsc --noEmit -p .', lint: 'tsc --noEmit -p .', test: 'vitest run --root ../.. packages/' + name },
    dependencies: {}, devDependencies: { '@caffe-ts/tsconfig': 'workspace:*' },
  }, null, 2) + '\n');
}
writeFileSync(`${dir}/tsconfig.json`, JSON.stringify({ extends: '@caffe-ts/tsconfig/base.json', include: ['src'] }, null, 2) + '\n');
writeFileSync(`${dir}/tsup.config.ts`, `import { defineConfig } from 'tsup';

export default defineConfig({
  entry: [${['index', ...extra].map((e) => `'src/${e}.ts'`).join(', ')}],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  external: ['vitest'],
});
`);
if (!existsSync(`${dir}/src/index.ts`)) writeFileSync(`${dir}/src/index.ts`, 'export {};\n');
