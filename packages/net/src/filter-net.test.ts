import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createMessage, parseNetParameter, parseText, Phase, type NetStateRule } from '@caffe-ts/proto';
import { NetError } from './errors.js';
import { filterNet, stateMeetsRule } from './filter-net.js';
import { captureLog, net } from './test-helpers.js';

const rule = (text: string) => parseText<NetStateRule>('NetStateRule', text);
const names = (p: ReturnType<typeof net>) => p.layer.map((l) => l.name);
const quiet = { log: false };

describe('stateMeetsRule', () => {
  const train = { phase: Phase.TRAIN, level: 0, stage: [] as string[] };
  it('an empty rule always matches', () => {
    expect(stateMeetsRule(train, rule(''), 'l', quiet)).toBe(true);
  });
  it('checks the phase only when the rule sets one', () => {
    expect(stateMeetsRule(train, rule('phase: TRAIN'), 'l', quiet)).toBe(true);
    expect(stateMeetsRule(train, rule('phase: TEST'), 'l', quiet)).toBe(false);
    expect(stateMeetsRule({ phase: Phase.TEST }, rule('phase: TEST'), 'l', quiet)).toBe(true);
  });
  it('checks min_level and max_level inclusively', () => {
    const at = (level: number) => ({ phase: Phase.TEST, level });
    expect(stateMeetsRule(at(2), rule('min_level: 2'), 'l', quiet)).toBe(true);
    expect(stateMeetsRule(at(1), rule('min_level: 2'), 'l', quiet)).toBe(false);
    expect(stateMeetsRule(at(3), rule('max_level: 3'), 'l', quiet)).toBe(true);
    expect(stateMeetsRule(at(4), rule('max_level: 3'), 'l', quiet)).toBe(false);
    // An explicit 0 is a real bound (presence, not truthiness).
    expect(stateMeetsRule(at(-1), rule('min_level: 0'), 'l', quiet)).toBe(false);
  });
  it('needs all stages and none of the not_stages', () => {
    const st = { phase: Phase.TEST, stage: ['a', 'b'] };
    expect(stateMeetsRule(st, rule('stage: "a" stage: "b"'), 'l', quiet)).toBe(true);
    expect(stateMeetsRule(st, rule('stage: "a" stage: "c"'), 'l', quiet)).toBe(false);
    expect(stateMeetsRule(st, rule('not_stage: "c"'), 'l', quiet)).toBe(true);
    expect(stateMeetsRule(st, rule('not_stage: "b"'), 'l', quiet)).toBe(false);
  });
  it('logs why a rule failed, as Caffe does', () => {
    const lines = captureLog(() => stateMeetsRule(train, rule('phase: TEST'), 'mnist'));
    expect(lines.map((l) => l.message)).toEqual([
      'The NetState phase (TRAIN) differed from the phase (TEST) specified by a rule in layer mnist',
    ]);
    const l2 = captureLog(() => stateMeetsRule({ phase: Phase.TEST, stage: [] }, rule('stage: "deploy"'), 'x'));
    expect(l2[0]!.message).toBe("The NetState did not contain stage 'deploy' specified by a rule in layer x");
  });
});

describe('filterNet', () => {
  const p = net(`
    name: "f"
    layer { name: "always" type: "Noop" }
    layer { name: "train_only" type: "Noop" include { phase: TRAIN } }
    layer { name: "test_only" type: "Noop" include { phase: TEST } }
    layer { name: "not_test" type: "Noop" exclude { phase: TEST } }
    layer { name: "train_or_deploy" type: "Noop" include { phase: TRAIN } include { stage: "deploy" } }
    layer { name: "level2" type: "Noop" include { min_level: 2 } }
    layer { name: "not_deploy" type: "Noop" exclude { stage: "deploy" } }
  `);

  it('keeps layers by phase, include (OR) and exclude', () => {
    expect(names(filterNet(p, { phase: Phase.TRAIN }, quiet))).toEqual([
      'always', 'train_only', 'not_test', 'train_or_deploy', 'not_deploy',
    ]);
    expect(names(filterNet(p, { phase: Phase.TEST }, quiet))).toEqual(['always', 'test_only', 'not_deploy']);
    expect(names(filterNet(p, { phase: Phase.TEST, stage: ['deploy'], level: 2 }, quiet))).toEqual([
      'always', 'test_only', 'train_or_deploy', 'level2',
    ]);
  });

  it('does not modify its input', () => {
    filterNet(p, { phase: Phase.TEST }, quiet);
    expect(p.layer).toHaveLength(7);
  });

  it('rejects a layer with both include and exclude rules', () => {
    const bad = net(`layer { name: "both" type: "Noop" include { phase: TRAIN } exclude { phase: TEST } }`);
    expect(() => filterNet(bad, { phase: Phase.TRAIN }, quiet)).toThrow(NetError);
    expect(() => filterNet(bad, { phase: Phase.TRAIN }, quiet)).toThrow(
      /Layer 'both' \(type Noop\): specify either include rules or exclude rules; not both/,
    );
  });

  it('accepts a NetState message', () => {
    const state = createMessage('NetState', { phase: 'TRAIN', stage: ['deploy'] });
    expect(names(filterNet(p, state as never, quiet))).toContain('train_or_deploy');
  });

  const corpus = fileURLToPath(new URL('../../../../shared/corpus', import.meta.url));
  const lenet = `${corpus}/weights/lenet_nn_ex1/lenet_train_test.prototxt`;
  it.skipIf(!existsSync(lenet))('splits the real LeNet train/test definition by phase', () => {
    const param = parseNetParameter(readFileSync(lenet, 'utf8'), lenet);
    const train = names(filterNet(param, { phase: Phase.TRAIN }, quiet));
    const test = names(filterNet(param, { phase: Phase.TEST }, quiet));
    expect(train).not.toContain('accuracy');
    expect(test).toContain('accuracy');
    expect(train.length).toBe(test.length - 1);
    expect(train.filter((n) => n === 'mnist')).toHaveLength(1);
    expect(test.filter((n) => n === 'mnist')).toHaveLength(1);
  });
});
