import { getBackend, type Backend } from '@caffe-ts/blob';
// Makes `--backend gpu` (and -gpu) resolve to the gpu.js backend; it starts only when asked for.
import '@caffe-ts/backend-gpu/register';
import { registerBuiltinLayers, defaultLayerRegistry, type LayerRegistry } from '@caffe-ts/layers';
import { registerDataLayers } from '@caffe-ts/io-leveldb';
import { Phase } from '@caffe-ts/proto';
import { UsageError, type Flags } from '../args.js';

/** The default registry with every layer this CLI ships: the built-ins and the data layers. */
export function cliRegistry(): LayerRegistry {
  const registry = defaultLayerRegistry();
  registerBuiltinLayers(registry);
  registerDataLayers(registry);
  return registry;
}

/** --backend (or Caffe's -gpu, which asks for the GPU backend). */
export async function backendFromFlags(flags: Flags): Promise<Backend> {
  const gpu = flags.string('gpu');
  const name = flags.string('backend', gpu !== undefined ? 'gpu' : 'cpu')!;
  try {
    return await getBackend(name);
  } catch (e) {
    throw new UsageError(`${(e as Error).message}`);
  }
}

/**
 * A flag of comma-separated numbers (`--channel_swap 2,1,0`), `fallback` when it is absent;
 * undefined when absent without a fallback, or given empty (pycaffe's scripts read
 * `--channel_swap ''` as "none").
 */
export function numberList(flags: Flags, name: string, fallback?: string): number[] | undefined {
  const text = flags.string(name, fallback);
  if (text === undefined || text.trim() === '') return undefined;
  const values = text.split(',').map((v) => Number(v.trim()));
  if (values.some((v) => !Number.isFinite(v))) throw new UsageError(`flag --${name} expects comma-separated numbers, got '${text}'`);
  return values;
}

/** --phase TRAIN|TEST, --level N, --stage a,b as Caffe's flags. */
export function netStateFromFlags(flags: Flags, defaultPhase: Phase): { phase: Phase; level: number; stages: string[] } {
  const p = flags.string('phase');
  let phase = defaultPhase;
  if (p !== undefined) {
    if (p === 'TRAIN' || p === 'train') phase = Phase.TRAIN;
    else if (p === 'TEST' || p === 'test') phase = Phase.TEST;
    else throw new UsageError(`phase must be "TRAIN" or "TEST", got '${p}'`);
  }
  const level = flags.int('level', 0);
  const stage = flags.string('stage');
  const stages = stage ? stage.split(',').filter(Boolean) : [];
  return { phase, level, stages };
}

/** Milliseconds as Caffe prints them. */
export function ms(x: number): string {
  return Number(x.toPrecision(6)).toString();
}
