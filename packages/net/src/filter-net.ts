import { logger } from '@caffe-ts/blob';
import { hasField, Phase, printText, type LayerParameter, type NetParameter, type NetStateRule } from '@caffe-ts/proto';
import { NetError } from './errors.js';
import { shallowClone } from './message-util.js';

/** The part of a NetState that filtering reads: a NetState message, or a plain object. */
export interface NetStateLike {
  phase: Phase;
  level?: number;
  stage?: readonly string[];
}

export interface FilterOptions {
  /** Log why a rule did not match, as Caffe does (default true). */
  log?: boolean;
}

const log = logger('net.cpp');

const phaseName = (p: Phase): string => (p === Phase.TRAIN ? 'TRAIN' : p === Phase.TEST ? 'TEST' : String(p));

/**
 * Whether `state` meets `rule` (Caffe's Net::StateMeetsRule): the phase matches if the rule
 * sets one, the level lies within the rule's min/max where set, the state has every `stage`
 * and none of the `not_stage`s.
 */
export function stateMeetsRule(state: NetStateLike, rule: NetStateRule, layerName: string, options: FilterOptions = {}): boolean {
  const say = options.log === false ? () => {} : (m: string) => log.info(m);
  const level = state.level ?? 0;
  const stages = state.stage ?? [];
  if (hasField(rule, 'phase') && rule.phase !== state.phase) {
    say(
      `The NetState phase (${phaseName(state.phase)}) differed from the phase (${phaseName(rule.phase)}) ` +
        `specified by a rule in layer ${layerName}`,
    );
    return false;
  }
  if (hasField(rule, 'min_level') && level < rule.min_level) {
    say(`The NetState level (${level}) is below the min_level (${rule.min_level}) specified by a rule in layer ${layerName}`);
    return false;
  }
  if (hasField(rule, 'max_level') && level > rule.max_level) {
    say(`The NetState level (${level}) is above the max_level (${rule.max_level}) specified by a rule in layer ${layerName}`);
    return false;
  }
  for (const s of rule.stage) {
    if (!stages.includes(s)) {
      say(`The NetState did not contain stage '${s}' specified by a rule in layer ${layerName}`);
      return false;
    }
  }
  for (const s of rule.not_stage) {
    if (stages.includes(s)) {
      say(`The NetState contained a not_stage '${s}' specified by a rule in layer ${layerName}`);
      return false;
    }
  }
  return true;
}

/** Whether `layer` belongs in a net with `state` (include rules OR'ed; exclude rules veto). */
export function layerIncluded(layer: LayerParameter, state: NetStateLike, options: FilterOptions = {}): boolean {
  if (layer.include.length > 0 && layer.exclude.length > 0) {
    throw new NetError(
      `Layer '${layer.name}' (type ${layer.type}): specify either include rules or exclude rules; not both ` +
        `(found ${layer.include.length} include and ${layer.exclude.length} exclude rules).`,
    );
  }
  // Without include rules a layer is in unless an exclude rule matches.
  if (layer.include.length === 0) return !layer.exclude.some((r) => stateMeetsRule(state, r, layer.name, options));
  return layer.include.some((r) => stateMeetsRule(state, r, layer.name, options));
}

/**
 * A copy of `param` holding only the layers whose include/exclude rules `state` satisfies
 * (Caffe's Net::FilterNet). The layer messages themselves are shared with `param`.
 */
export function filterNet(param: NetParameter, state: NetStateLike, options: FilterOptions = {}): NetParameter {
  const out = shallowClone(param);
  out.layer = param.layer.filter((l) => layerIncluded(l, state, options));
  return out;
}

/** A state as Caffe's rules see it, for messages: "phase TEST, level 0, stages 'a', 'b'" (or "no stages"). */
export function describeNetState(state: NetStateLike): string {
  const stages = state.stage ?? [];
  return `phase ${phaseName(state.phase)}, level ${state.level ?? 0}, ${stages.length > 0 ? `stages ${stages.map((s) => `'${s}'`).join(', ')}` : 'no stages'}`;
}

/**
 * The layers of `param` that produce `blob` but that `state` leaves out, each with its rules as
 * prototxt ("'data' (include { phase: TRAIN })"): what to say when a kept layer reads a blob that
 * only a filtered-out layer would have produced.
 */
export function excludedProducers(param: NetParameter, state: NetStateLike, blob: string): string[] {
  const rules = (kind: string, list: readonly NetStateRule[]) =>
    list.map((r) => `${kind} { ${printText('NetStateRule', r).trim().split(/\s*\n\s*/).join(' ')} }`);
  return param.layer
    .filter((l) => l.top.includes(blob) && !layerIncluded(l, state, { log: false }))
    .map((l) => `'${l.name}' (${[...rules('include', l.include), ...rules('exclude', l.exclude)].join(', ')})`);
}
