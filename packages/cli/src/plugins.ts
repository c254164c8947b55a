import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CONTRIB_LAYER_DEFS, CONTRIB_LAYER_FIELDS, DROPOUT_SCALE_TRAIN_FIELD, POOLING_CEIL_MODE_FIELD, TEXT_COMPAT_FIELDS, UNSUPPORTED_FORK_LAYER_TYPES } from '@caffe-ts/layers-contrib';
import { CaffeError, SSD_FORK_LAYER_FIELDS, SSD_FORK_TRANSFORM_FIELDS } from '@caffe-ts/proto';
import { UsageError } from './args.js';
import { userCwd, userPath } from './paths.js';

/** A --plugin module that could not be loaded, or that threw while it registered its layers. */
export class PluginError extends CaffeError {
  override readonly name: string = 'PluginError';
}

/** The URLs of the plugins loaded so far, in order: the data-parallel workers import them too. */
const loaded: string[] = [];

/** Plugins loaded by this process (--plugin), as URLs a worker thread can import. */
export function loadedPluginUrls(): readonly string[] {
  return loaded;
}

/**
 * Where `--plugin SPEC` points: a file (an absolute path, one starting with ./ or ../, or any
 * that exists) against the working directory, a file: URL as given, or a package specifier
 * resolved first from the working directory (the user's project) and then from the CLI's own
 * dependencies (e.g. '@caffe-ts/layers-contrib/register').
 */
export function resolvePlugin(spec: string): string {
  if (spec.startsWith('file:')) return spec;
  const asPath = userPath(spec);
  if (/^(\.{1,2}[\\/]|[\\/]|[a-z]:[\\/])/i.test(spec) || existsSync(asPath)) {
    if (!existsSync(asPath)) throw new UsageError(`--plugin ${spec}: no such file (${asPath})`);
    return pathToFileURL(asPath).href;
  }
  try {
    return pathToFileURL(createRequire(join(userCwd(), 'package.json')).resolve(spec)).href;
  } catch {
    // Not installed in the user's project (or an ESM-only export): the CLI's own dependencies.
  }
  const own = ownModuleUrl(spec);
  if (own !== spec) return own;
  throw new UsageError(`--plugin ${spec}: cannot find the module from ${userCwd()} or from the caffe command's own packages`);
}

/**
 * A module of the caffe command's own dependencies as a URL a worker thread can import (their
 * bare specifiers would resolve from the worker script's package instead); `spec` unchanged where
 * it cannot be resolved.
 */
export function ownModuleUrl(spec: string): string {
  const resolve = (import.meta as { resolve?: (s: string) => string }).resolve;
  try {
    return resolve ? resolve(spec) : spec;
  } catch {
    return spec;
  }
}

/**
 * Import each plugin module once, in order. A plugin registers its layer types (and parameter
 * fields) when imported, into the default registry the CLI uses, as
 * '@caffe-ts/layers-contrib/register' does. Specs may repeat the flag or be comma-separated.
 */
export async function loadPlugins(specs: readonly string[]): Promise<void> {
  for (const spec of specs.flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean)) {
    const url = resolvePlugin(spec);
    if (loaded.includes(url)) continue;
    try {
      await import(url);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new PluginError(`--plugin ${spec}: loading ${url} failed: ${why}`, { cause: e });
    }
    loaded.push(url);
  }
}

/** Fields of Caffe forks that @caffe-ts/layers-contrib adds to the schema when it is loaded. */
function contribFieldNames(): Set<string> {
  return new Set([
    ...SSD_FORK_LAYER_FIELDS.map(([name]) => name),
    ...SSD_FORK_TRANSFORM_FIELDS.map(([name]) => name),
    ...CONTRIB_LAYER_FIELDS.map(([name]) => name),
    POOLING_CEIL_MODE_FIELD.name,
    DROPOUT_SCALE_TRAIN_FIELD.name,
    ...TEXT_COMPAT_FIELDS.map((f) => f.name),
  ]);
}

/** Fork layer types that @caffe-ts/layers-contrib registers. */
function contribLayerTypes(): Set<string> {
  return new Set([...CONTRIB_LAYER_DEFS.map((d) => d.type), ...Object.keys(UNSUPPORTED_FORK_LAYER_TYPES)]);
}

/**
 * A line to add to an error that a plugin would fix, naming the plugin or saying how to pass one:
 * a field or layer type of a Caffe fork this CLI ships (SSD's permute_param, ReLU6, …), or a
 * Python layer with no TypeScript port registered. Empty otherwise.
 */
export function pluginHint(message: string): string {
  if (/^Python layer .*no TypeScript implementation is registered/.test(message)) {
    return 'put that registerPythonLayer call in a module of your own and pass it with --plugin ./module.mjs';
  }
  const field = /unknown field '([\w.]+)'/.exec(message)?.[1];
  const type = /unknown layer type:?\s*'?([\w.]+)/i.exec(message)?.[1];
  const known = (field !== undefined && contribFieldNames().has(field)) || (type !== undefined && contribLayerTypes().has(type));
  if (!known) return '';
  const what = field !== undefined ? `'${field}'` : `layer type '${type}'`;
  return `${what} comes from a Caffe fork that @caffe-ts/layers-contrib reads: add --plugin @caffe-ts/layers-contrib/register`;
}
