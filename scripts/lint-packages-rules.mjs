// The project's own packaging rules, checked on a packed tarball (see scripts/lint-packages.sh):
//   node scripts/lint-packages-rules.mjs <package.tgz>
// Prints "   rules: ok" or each broken rule, and exits 1 when any is broken.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const tgz = process.argv[2];
if (!tgz) {
  console.error('usage: node scripts/lint-packages-rules.mjs <package.tgz>');
  process.exit(2);
}

// The tarball unpacked once; its files are read from there.
const unpacked = mkdtempSync(join(tmpdir(), 'caffe-ts-rules-'));
process.on('exit', () => rmSync(unpacked, { recursive: true, force: true }));
execFileSync('tar', ['-xzf', tgz, '-C', unpacked]);
const read = (f) => readFileSync(join(unpacked, 'package', f), 'utf8');
const files = execFileSync('tar', ['-tzf', tgz], { encoding: 'utf8' })
  .split('\n')
  .filter(Boolean)
  .map((f) => f.replace(/^package\//, ''));
const pkg = JSON.parse(read('package.json'));

// Packages that extend the core (layer types, data sources, backends): they must share the
// application's single copy of the registries, so the core comes in as peers.
const PLUGINS = new Set(['@caffe-ts/io-leveldb', '@caffe-ts/backend-gpu']);
const CORE = ['@caffe-ts/proto', '@caffe-ts/blob', '@caffe-ts/layers', '@caffe-ts/net'];

const problems = [];
const folder = pkg.name.replace(/^@caffe-ts\//, '');

if (!/^@caffe-ts\/[a-z0-9-]+$/.test(pkg.name)) problems.push(`name '${pkg.name}' is not @caffe-ts/<folder>`);
if (!/^\d+\.\d+\.\d+(-[\w.]+)?$/.test(pkg.version ?? '')) problems.push(`version '${pkg.version}' is not semver`);
if (pkg.license !== 'BSD-2-Clause') problems.push(`license is '${pkg.license}', expected BSD-2-Clause (as Caffe)`);
if (!pkg.description) problems.push('no description');
if (pkg.repository?.directory !== `packages/${folder}`) problems.push(`repository.directory should be packages/${folder}`);
if (pkg.type !== 'module') problems.push(`type is '${pkg.type}', expected module (ESM)`);
if (pkg.publishConfig?.access !== 'public') problems.push('publishConfig.access is not public (scoped packages publish as restricted otherwise)');
if (!pkg.engines?.node) problems.push('no engines.node');
if (pkg.private) problems.push('private: true');
for (const f of ['LICENSE', 'README.md', 'CHANGELOG.md']) if (!files.includes(f)) problems.push(`${f} is not in the tarball`);
if (files.some((f) => f.startsWith('src/') || f.endsWith('.test.js') || f.endsWith('.test.d.ts'))) problems.push('sources or tests are in the tarball');

// exports: types first in every condition object, and only ./dist targets for code
for (const [sub, target] of Object.entries(pkg.exports ?? {})) {
  if (typeof target === 'string') continue; // plain files such as ./caffe.proto
  const keys = Object.keys(target);
  if (keys[0] !== 'types') problems.push(`exports['${sub}']: 'types' must come first (found ${keys.join(', ')})`);
  if (!('import' in target)) problems.push(`exports['${sub}']: no 'import' condition`);
}

// Every built entry (dist/<path>.js that is not a shared chunk) is reachable: exported, the bin,
// or loaded by the package's own code (a worker script found with new URL('./x.js', …), a chunk
// split off for a dynamic import('./x-HASH.js')), so nothing ships that nobody can run.
const exportTargets = new Set(
  Object.values(pkg.exports ?? {}).map((t) => (typeof t === 'string' ? t : t.import ?? t.default)),
);
const binTargets = new Set(Object.values(typeof pkg.bin === 'string' ? { [pkg.name]: pkg.bin } : (pkg.bin ?? {})));
const shippedJs = files.filter((f) => /^dist\/.+\.js$/.test(f));
const code = new Map(shippedJs.map((f) => [f, read(f)]));
const loadedByPackage = (f) => {
  const base = f.slice(f.lastIndexOf('/') + 1);
  const quoted = new RegExp(`["'\`]\\.{1,2}/(?:[\\w.-]+/)*${base.replace(/[.$]/g, '\\$&')}["'\`]`);
  return [...code].some(([other, text]) => other !== f && quoted.test(text));
};
for (const f of shippedJs) {
  if (/^chunk-/.test(f.slice(f.lastIndexOf('/') + 1))) continue;
  if (exportTargets.has(`./${f}`) || binTargets.has(`./${f}`) || loadedByPackage(f)) continue;
  problems.push(`${f} is built but neither exported, a bin, nor loaded by the package's code`);
}

// sideEffects: false, or only the ./register entries
const se = pkg.sideEffects;
if (se !== false) {
  if (!Array.isArray(se)) problems.push('sideEffects must be false or a list of the ./register entries');
  else {
    for (const f of se) if (!/^\.\/dist\/register\.js$/.test(f)) problems.push(`sideEffects lists '${f}', which is not a ./register entry`);
    if (!pkg.exports?.['./register']) problems.push('sideEffects lists files but there is no ./register export');
  }
}
if (pkg.exports?.['./register'] && !(Array.isArray(se) && se.includes('./dist/register.js'))) {
  problems.push("./register is exported but ./dist/register.js is not in sideEffects (a bundler would drop it)");
}

const depGroups = ['dependencies', 'peerDependencies', 'optionalDependencies'];
for (const g of depGroups) {
  for (const [dep, range] of Object.entries(pkg[g] ?? {})) {
    if (String(range).startsWith('workspace:')) problems.push(`${g}.${dep} is still '${range}'`);
  }
}
if (PLUGINS.has(pkg.name)) {
  for (const dep of CORE) {
    if (pkg.dependencies?.[dep]) problems.push(`plugin lists ${dep} in dependencies; it must be a peerDependency`);
  }
  if (!Object.keys(pkg.peerDependencies ?? {}).some((d) => CORE.includes(d))) problems.push('plugin has no core peerDependencies');
}

if (problems.length > 0) {
  for (const p of problems) console.log(`   rules: ${p}`);
  process.exit(1);
}
console.log('   rules: ok');
