import { describe, expect, it } from 'vitest';
import { Flags, parseArgs } from './args.js';

const bools = (argv: string[]) => {
  const flags = new Flags('t', parseArgs(['t', ...argv], ['encoded', 'gray']).flags);
  return [flags.bool('encoded'), flags.bool('gray')];
};

describe('parseArgs: gflags booleans', () => {
  it('takes every spelling gflags takes, in any case, with one or two dashes', () => {
    expect(bools(['--encoded=True', '-gray=FALSE'])).toEqual([true, false]);
    expect(bools(['--encoded=yes', '--gray=Y'])).toEqual([true, true]);
    expect(bools(['-encoded=1', '--gray=t'])).toEqual([true, true]);
    expect(bools(['--encoded=No', '--gray=0'])).toEqual([false, false]);
    expect(bools(['--encoded', '-gray'])).toEqual([true, true]);
    expect(bools([])).toEqual([false, false]);
  });

  it('reads --noflag as false, as gflags does', () => {
    expect(bools(['--encoded', '--nogray'])).toEqual([true, false]);
    expect(bools(['-noencoded'])).toEqual([false, false]);
  });

  it('refuses a value that is no boolean instead of reading it as false', () => {
    expect(() => parseArgs(['t', '--encoded=maybe'], ['encoded'])).toThrow("flag --encoded expects true or false, got 'maybe'");
  });

  it('leaves other flags and positional arguments alone', () => {
    const p = parseArgs(['convert_annoset', '--label_type=xml', '--nothing=1', 'root/', 'list.txt'], ['encoded']);
    expect(p.positional).toEqual(['root/', 'list.txt']);
    expect(p.flags).toMatchObject({ label_type: 'xml', nothing: '1' });
  });
});

describe('parseArgs: flags of several words', () => {
  it('collects the words up to the next flag (train_net.py --set KEY VALUE …), negative numbers and repeats included', () => {
    const a = parseArgs(['train', '--set', 'RNG_SEED', '7', 'TRAIN.RPN_POSITIVE_WEIGHT', '-1', '--cfg', 'a.yml', '--set', 'EXP_DIR', 'x'], [], ['set']);
    expect(a.flags.set).toEqual(['RNG_SEED', '7', 'TRAIN.RPN_POSITIVE_WEIGHT', '-1', 'EXP_DIR', 'x']);
    expect(a.flags.cfg).toBe('a.yml');
    expect(a.positional).toEqual([]);
  });
});
