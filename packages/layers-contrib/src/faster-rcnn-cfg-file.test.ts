import { describe, expect, it } from 'vitest';
import { FASTER_RCNN_CONFIG } from './faster-rcnn-config.js';
import { applyFasterRcnnCfgList, FasterRcnnConfigError, parseFasterRcnnCfg } from './faster-rcnn-cfg-file.js';
import { END2END_YML } from './testing/tiny-faster-rcnn-train.js';


function errorOf(text: string): FasterRcnnConfigError {
  try {
    parseFasterRcnnCfg(text, 'my.yml');
  } catch (e) {
    if (e instanceof FasterRcnnConfigError) return e;
    throw e;
  }
  throw new Error('expected a FasterRcnnConfigError');
}

describe('parseFasterRcnnCfg (cfg_from_file)', () => {
  it('faster_rcnn_end2end.yml over config.py\'s defaults gives the end2end config the ports default to', () => {
    const read = parseFasterRcnnCfg(END2END_YML, 'faster_rcnn_end2end.yml');
    expect(read.config).toEqual(FASTER_RCNN_CONFIG);
    expect(read.set).toEqual([
      'EXP_DIR', 'TRAIN.HAS_RPN', 'TRAIN.IMS_PER_BATCH', 'TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED', 'TRAIN.RPN_POSITIVE_OVERLAP',
      'TRAIN.RPN_BATCHSIZE', 'TRAIN.PROPOSAL_METHOD', 'TRAIN.BG_THRESH_LO', 'TEST.HAS_RPN',
    ]);
    expect(read.unused).toEqual(['EXP_DIR', 'TRAIN.PROPOSAL_METHOD']);
  });

  it('starts from config.py\'s own defaults, not end2end\'s: an empty file is Fast R-CNN\'s settings', () => {
    const read = parseFasterRcnnCfg('', 'empty.yml');
    expect(read.config.TRAIN.HAS_RPN).toBe(false);
    expect(read.config.TRAIN.IMS_PER_BATCH).toBe(2);
    expect(read.config.TRAIN.BG_THRESH_LO).toBe(0.1);
    expect(read.config.TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED).toBe(false);
    expect(read.config.TEST.HAS_RPN).toBe(false);
    expect(read.set).toEqual([]);
  });

  it('reads YAML 1.1 as PyYAML does, lists for tuples, integers for floats, and the nested pixel means', () => {
    const read = parseFasterRcnnCfg(
      `${END2END_YML}  SCALES: !!python/tuple [400, 500]
  MAX_SIZE: 833
  FG_FRACTION: 1
PIXEL_MEANS: [[[100.5, 110, 120]]]
RNG_SEED: 1701
`.replace('TEST:\n  HAS_RPN: True\n', '') + 'TEST:\n  HAS_RPN: yes\n  SCALES: [500]\n',
      'x.yml',
    );
    expect(read.config.TRAIN.SCALES).toEqual([400, 500]);
    expect(read.config.TRAIN.MAX_SIZE).toBe(833);
    expect(read.config.TRAIN.FG_FRACTION).toBe(1);
    expect(read.config.PIXEL_MEANS).toEqual([100.5, 110, 120]);
    expect(read.config.RNG_SEED).toBe(1701);
    expect(read.config.TEST.HAS_RPN).toBe(true);
    expect(read.config.TEST.SCALES).toEqual([500]);
  });

  it('refuses what cfg_from_file refuses, naming the file, line and column', () => {
    const unknown = errorOf('TRAIN:\n  HAS_RPN: True\n  RPN_BATCH: 128\n');
    expect(unknown.message).toBe("my.yml:3:3: 'TRAIN.RPN_BATCH' is not a valid config key (config.py has no such key)");
    expect(unknown.key).toBe('TRAIN.RPN_BATCH');
    expect([unknown.line, unknown.column]).toEqual([3, 3]);
    expect(errorOf('FOO: 1\n').message).toBe("my.yml:1:1: 'FOO' is not a valid config key (config.py has no such key)");
    expect(errorOf('TRAIN:\n  IMS_PER_BATCH: 1.5\n').message).toBe('my.yml:2:18: TRAIN.IMS_PER_BATCH must be an integer (got 1.5)');
    expect(errorOf('TRAIN:\n  HAS_RPN: maybe\n').message).toBe('my.yml:2:12: TRAIN.HAS_RPN must be a boolean (True or False) (got "maybe")');
    expect(errorOf('TRAIN:\n  SCALES: 600\n').message).toBe('my.yml:2:11: TRAIN.SCALES must be a list of integers (got 600)');
    expect(errorOf('TRAIN:\n  BBOX_NORMALIZE_STDS: [0.1, 0.2]\n').message).toMatch(/^my\.yml:2:24: TRAIN\.BBOX_NORMALIZE_STDS must be a list of 4 numbers/);
    expect(errorOf('TRAIN: 3\n').message).toBe('my.yml:1:8: TRAIN must be a mapping of its keys');
    expect(errorOf('- a\n- b\n').message).toMatch(/^my\.yml:1:1: expected a mapping of config keys/);
    // Aliases resolve as PyYAML resolves them; one that holds itself is refused like any other value.
    expect(parseFasterRcnnCfg('TRAIN:\n  MAX_SIZE: &m 900\n  SCALES: [*m, 600]\n').config.TRAIN.SCALES).toEqual([900, 600]);
    expect(errorOf('TRAIN: &a\n  SCALES: *a\n').message).toBe('my.yml:2:11: TRAIN.SCALES must be a list of integers (got a value that refers to itself)');
  });

  it('refuses values out of range at their key, and train.py\'s RPN assertion', () => {
    expect(errorOf(`${END2END_YML}  FG_FRACTION: 1.5\n`.replace('TEST:\n  HAS_RPN: True\n', '')).message).toBe(
      'my.yml:10:3: TRAIN.FG_FRACTION must be in [0, 1] (got 1.5)',
    );
    // An RPN's targets have no statistics to compute beforehand: train.py asserts PRECOMPUTED.
    const rpn = errorOf('TRAIN:\n  HAS_RPN: True\n  IMS_PER_BATCH: 1\n');
    expect(rpn.message).toMatch(/TRAIN\.BBOX_NORMALIZE_TARGETS_PRECOMPUTED must be true with TRAIN\.HAS_RPN, BBOX_REG and BBOX_NORMALIZE_TARGETS/);
    expect(rpn.message).toMatch(/after the file was applied to config\.py's defaults/);
  });

  it('reports malformed YAML and duplicate keys at their place', () => {
    const flow = errorOf('TRAIN:\n  SCALES: [600,\n');
    expect(flow.message).toMatch(/^my\.yml:\d+:\d+: not valid YAML: /);
    const dup = errorOf('TRAIN:\n  MAX_SIZE: 1000\n  MAX_SIZE: 900\n');
    expect(dup.message).toMatch(/^my\.yml:3:3: not valid YAML: Map keys must be unique/);
  });
});

describe('applyFasterRcnnCfgList (train_net.py --set, cfg_from_list)', () => {
  const base = parseFasterRcnnCfg(END2END_YML).config;

  it('reads values as literal_eval does and applies them over the config given', () => {
    const read = applyFasterRcnnCfgList(base, ['RNG_SEED', '1701', 'TRAIN.SCALES', '(400, 500,)', 'TRAIN.USE_FLIPPED', 'False', 'TRAIN.SNAPSHOT_INFIX', 'seed1701', 'EXP_DIR', "'x'", 'TEST.NMS', '.25', 'PIXEL_MEANS', '[[[100, 110, 120]]]']);
    expect(read.config.RNG_SEED).toBe(1701);
    expect(read.config.TRAIN.SCALES).toEqual([400, 500]);
    expect(read.config.TRAIN.USE_FLIPPED).toBe(false);
    expect(read.config.TRAIN.SNAPSHOT_INFIX).toBe('seed1701'); // not a literal: the text itself
    expect(read.config.TEST.NMS).toBe(0.25);
    expect(read.config.PIXEL_MEANS).toEqual([100, 110, 120]);
    expect(read.config.TRAIN.HAS_RPN).toBe(true); // the rest is the base's
    expect(read.set).toEqual(['RNG_SEED', 'TRAIN.SCALES', 'TRAIN.USE_FLIPPED', 'TRAIN.SNAPSHOT_INFIX', 'EXP_DIR', 'TEST.NMS', 'PIXEL_MEANS']);
    expect(read.unused).toEqual(['EXP_DIR']);
    expect(base.RNG_SEED).toBe(3); // the base is not changed
  });

  it('refuses unknown keys, values of another kind, values out of range and a word without its pair', () => {
    expect(() => applyFasterRcnnCfgList(base, ['TRAIN.SCALE', '[600]'])).toThrow("--set TRAIN.SCALE: 'TRAIN.SCALE' is not a valid config key (config.py has no such key)");
    expect(() => applyFasterRcnnCfgList(base, ['TRAIN.X.Y', '1'])).toThrow(FasterRcnnConfigError);
    expect(() => applyFasterRcnnCfgList(base, ['TRAIN.MAX_SIZE', '1000.5'])).toThrow('--set TRAIN.MAX_SIZE: TRAIN.MAX_SIZE must be an integer (got "1000.5")');
    expect(() => applyFasterRcnnCfgList(base, ['TRAIN.HAS_RPN', 'yes'])).toThrow('--set TRAIN.HAS_RPN: TRAIN.HAS_RPN must be a boolean (True or False) (got "yes")');
    expect(() => applyFasterRcnnCfgList(base, ['TRAIN.FG_FRACTION', '2'])).toThrow('--set TRAIN.FG_FRACTION: TRAIN.FG_FRACTION must be in [0, 1] (got 2)');
    expect(() => applyFasterRcnnCfgList(base, ['RNG_SEED'])).toThrow("--set: expects KEY VALUE pairs (got 1 words, the last 'RNG_SEED' has no value)");
  });
});
