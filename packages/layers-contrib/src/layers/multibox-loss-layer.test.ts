import { Blob, Rng } from '@caffe-ts/blob';
import { createLayer, GradientChecker, makeBlob } from '@caffe-ts/layers/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerContribSchema } from '../schema.js';
import { MultiBoxLossLayer, multiBoxLossLayerDef } from './multibox-loss-layer.js';
import { priorBoxLayerDef } from './prior-box-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });
const softplus = (x: number) => Math.log(1 + Math.exp(x));

/** Priors blob (1 × 2 × 4P) from boxes and one variance set for all. */
function priorBlob(boxes: number[][], variance = [0.1, 0.1, 0.2, 0.2]): Blob {
  return makeBlob([1, 2, boxes.length * 4], { filler: [...boxes.flat(), ...boxes.flatMap(() => variance)] });
}

/** Label blob (1 × 1 × G × 8) from rows [item, label, instance, xmin, ymin, xmax, ymax, difficult]. */
function labelBlob(rows: number[][]): Blob {
  return makeBlob([1, 1, rows.length, 8], { filler: rows.flat() });
}

// Five priors: the top-left quarter A, the centre quarter B, the bottom-right quarter C, the whole
// image D, and a strip E at the top right that touches no ground truth.
const PRIORS = [
  [0, 0, 0.5, 0.5],
  [0.25, 0.25, 0.75, 0.75],
  [0.5, 0.5, 1, 1],
  [0, 0, 1, 1],
  [0.6, 0, 1, 0.4],
];
// Two classes (0 background); per prior [background score, object score].
const CONF = [
  [0, 1], // A: the positive, scored against class 1
  [2, 0], // B: background loss log(1 + e^−2)
  [0, 3], // C: log(1 + e^3), the hardest negative
  [1, 0.5], // D: log(1 + e^−0.5)
  [0, 1], // E: log(1 + e^1)
];
const LOC_A = [0.5, -2, 0.1, 0];

function build(params: Record<string, unknown>, extra: Record<string, unknown> = {}, locA = LOC_A) {
  const layer = createLayer<MultiBoxLossLayer>(multiBoxLossLayerDef, {
    name: 'mbox_loss',
    multibox_loss_param: { num_classes: 2, code_type: 'CENTER_SIZE', neg_pos_ratio: 2, ...params },
    ...extra,
  });
  const loc = makeBlob([1, 20], { filler: [...locA, ...new Array(16).fill(0.3)] });
  const conf = makeBlob([1, 10], { filler: CONF.flat() });
  const bottoms = [loc, conf, priorBlob(PRIORS), labelBlob([[0, 1, 0, 0, 0, 0.5, 0.5, 0]])];
  const top = f64();
  layer.setUp(bottoms, [top]);
  layer.forward(bottoms, [top]);
  return { layer, bottoms, top, loss: top.cpuData()[0]! };
}

describe('MultiBoxLoss', () => {
  beforeAll(registerContribSchema);

  it('matches A, mines the two hardest negatives (C, E) and sums smooth L1 and softmax losses over one match (hand-computed)', () => {
    const { loss } = build({});
    // The ground truth is prior A itself: encoded target 0, so smooth L1 of A's offsets:
    // 0.5·0.25 + (2 − 0.5) + 0.5·0.01 + 0.
    const loc = 0.125 + 1.5 + 0.005;
    // A against class 1, then background for C and E (neg_pos_ratio 2 × 1 positive).
    const conf = softplus(0 - 1) + softplus(3 - 0) + softplus(1 - 0);
    expect(loss).toBeCloseTo(loc + conf, 12);
  });

  it('backward: smooth L1′ into A\'s offsets, p − onehot into the matched and mined rows, zero elsewhere', () => {
    const { layer, bottoms, top } = build({ loc_weight: 2 });
    top.mutableCpuDiff()[0] = 3;
    layer.backward([top], [true, true, false, false], bottoms);
    const locDiff = Array.from(bottoms[0]!.cpuDiff());
    // loc_weight 2 × top diff 3 / 1 match; f′ = d below 1, sign(d) above.
    expect(locDiff.slice(0, 4).map((x) => x / 6)).toEqual([0.5, -1, 0.1, 0].map((x) => expect.closeTo(x, 12)));
    expect(locDiff.slice(4)).toEqual(new Array(16).fill(0));
    const sig = (x: number) => 1 / (1 + Math.exp(-x));
    // Two-class softmax: p(object) = sigmoid(s1 − s0).
    const row = (s0: number, s1: number, label: number) => {
      const p1 = sig(s1 - s0);
      return [1 - p1 - (label === 0 ? 1 : 0), p1 - (label === 1 ? 1 : 0)].map((x) => expect.closeTo(3 * x, 12));
    };
    expect(Array.from(bottoms[1]!.cpuDiff())).toEqual([...row(0, 1, 1), 0, 0, ...row(0, 3, 0), 0, 0, ...row(0, 1, 0)]);
  });

  it('normalizes by the matches (VALID), N·P (FULL), N (BATCH_SIZE) or 1 (NONE), never below 1', () => {
    const valid = build({}).loss;
    expect(build({}, { loss_param: { normalization: 'FULL' } }).loss).toBeCloseTo(valid / 5, 12);
    expect(build({}, { loss_param: { normalization: 'BATCH_SIZE' } }).loss).toBeCloseTo(valid, 12);
    expect(build({}, { loss_param: { normalization: 'NONE' } }).loss).toBeCloseTo(valid, 12);
    // The deprecated normalize: false means BATCH_SIZE.
    expect(build({}, { loss_param: { normalize: false } }).loss).toBeCloseTo(valid, 12);
  });

  it('counts a term only where the layer\'s propagate_down is true, and L2 gives Σ 0.5·d²', () => {
    const conf = softplus(-1) + softplus(3) + softplus(1);
    expect(build({}, { propagate_down: [false, true, false, false] }).loss).toBeCloseTo(conf, 12);
    expect(build({}, { propagate_down: [true, false, false, false] }).loss).toBeCloseTo(1.63, 12);
    expect(build({ loc_loss_type: 'L2' }, { propagate_down: [true, false, false, false] }).loss).toBeCloseTo(0.5 * (0.25 + 4 + 0.01), 12);
  });

  it('without mining scores every prior; with LOGISTIC every class gets a sigmoid cross entropy', () => {
    const all = softplus(-1) + softplus(-2) + softplus(3) + softplus(-0.5) + softplus(1);
    expect(build({ mining_type: 'NONE' }, { propagate_down: [false, true, false, false] }).loss).toBeCloseTo(all, 12);
    // Logistic, mined rows A (target [0, 1]), C and E (target [1, 0]): Σ softplus(x) − t·x.
    const bce = (x: number, t: number) => softplus(x) - t * x;
    const logistic = bce(0, 0) + bce(1, 1) + bce(0, 1) + bce(3, 0) + bce(0, 1) + bce(1, 0);
    expect(build({ conf_loss_type: 'LOGISTIC' }, { propagate_down: [false, true, false, false] }).loss).toBeCloseTo(logistic, 12);
  });

  it('HARD_EXAMPLE picks sample_size priors by confidence plus localization loss', () => {
    // A: 0.313 + 1.63 = 1.94, C 3.05, E 1.31, D 0.47, B 0.13; sample_size 2 keeps C and A.
    const { loss } = build({ mining_type: 'HARD_EXAMPLE', sample_size: 2 });
    expect(loss).toBeCloseTo(1.63 + softplus(-1) + softplus(3), 12);
    // sample_size 1 keeps C alone: no match left, so VALID divides by max(1, 0).
    expect(build({ mining_type: 'HARD_EXAMPLE', sample_size: 1 }).loss).toBeCloseTo(softplus(3), 12);
  });

  it('HARD_EXAMPLE ranks by the configured localization loss: smooth L1 and L2 pick differently', () => {
    // Offsets (−1.8, −1.8, 0, 0) on A: smooth L1 2.6, L2 3.24. With A's confidence loss (0.313),
    // 2.91 or 3.55 against C's 3.05: sample_size 1 keeps C under smooth L1, A under L2.
    const locA = [-1.8, -1.8, 0, 0];
    expect(build({ mining_type: 'HARD_EXAMPLE', sample_size: 1 }, {}, locA).loss).toBeCloseTo(softplus(3), 12);
    expect(build({ mining_type: 'HARD_EXAMPLE', sample_size: 1, loc_loss_type: 'L2' }, {}, locA).loss).toBeCloseTo(3.24 + softplus(-1), 12);
  });

  it('compares in floats, as the fork: an overlap of float 0.7 meets overlap_threshold 0.7 (a float field)', () => {
    // Prior 0 is the ground truth; prior 1 (the unit box) overlaps it by Math.fround(0.7), just under
    // the double 0.7. Both match, so VALID divides prior 1's smooth L1 (|−0.3 / 0.2| − 0.5) by 2.
    const layer = createLayer<MultiBoxLossLayer>(multiBoxLossLayerDef, {
      propagate_down: [true, false, false, false],
      multibox_loss_param: { num_classes: 2, code_type: 'CORNER', overlap_threshold: 0.7, mining_type: 'NONE' },
    });
    const bottoms = [makeBlob([1, 8], { filler: 0 }), makeBlob([1, 4], { filler: 0 }), priorBlob([[0, 0, 0.7, 1], [0, 0, 1, 1]]), labelBlob([[0, 1, 0, 0, 0, 0.7, 1, 0]])];
    const top = f64();
    layer.setUp(bottoms, [top]);
    layer.forward(bottoms, [top]);
    expect(top.cpuData()[0]).toBeCloseTo(0.5, 6);
  });

  it('keeps the fork\'s LOGISTIC targets without mining: image i\'s start i·P elements in, not i·P·C', () => {
    // Two images, two priors, two classes; image 1's prior 1 matches a class-1 box. The fork writes
    // its target at 1·2 + 1·2 + 1 = element 5 (image 1, prior 0, class 1) rather than element 7.
    const layer = createLayer<MultiBoxLossLayer>(multiBoxLossLayerDef, {
      propagate_down: [false, true, false, false],
      multibox_loss_param: { num_classes: 2, conf_loss_type: 'LOGISTIC', mining_type: 'NONE' },
    });
    const bottoms = [makeBlob([2, 8], { filler: 0 }), makeBlob([2, 4], { filler: 0 }), priorBlob([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]]), labelBlob([[1, 1, 0, 0.5, 0.5, 1, 1, 0]])];
    const top = f64();
    layer.setUp(bottoms, [top]);
    layer.forward(bottoms, [top]);
    top.mutableCpuDiff()[0] = 1;
    layer.backward([top], [false, true, false, false], bottoms);
    // sigmoid(0) − target, over 1 match.
    expect(Array.from(bottoms[1]!.cpuDiff())).toEqual([0.5, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0.5]);
  });

  it('gives zero loss and zero gradients for a batch without ground truth (padding rows of −1)', () => {
    const layer = createLayer<MultiBoxLossLayer>(multiBoxLossLayerDef, { multibox_loss_param: { num_classes: 2 } });
    const bottoms = [makeBlob([1, 20]), makeBlob([1, 10]), priorBlob(PRIORS), labelBlob([[-1, -1, -1, -1, -1, -1, -1, -1]])];
    const top = f64();
    layer.setUp(bottoms, [top]);
    layer.forward(bottoms, [top]);
    expect(top.cpuData()[0]).toBe(0);
    top.mutableCpuDiff()[0] = 1;
    layer.backward([top], [true, true, false, false], bottoms);
    expect(bottoms[0]!.cpuDiff().every((x) => x === 0) && bottoms[1]!.cpuDiff().every((x) => x === 0)).toBe(true);
  });

  it('keeps the fork\'s quirk: with encode_variance_in_target the offsets\' gradient is not divided by the variances', () => {
    const locOnly = { propagate_down: [true, false, false, false] };
    const plain = build({ code_type: 'CORNER', encode_variance_in_target: false }, locOnly);
    const inTarget = build({ code_type: 'CORNER', encode_variance_in_target: true }, locOnly);
    // CORNER against A itself: target 0. Plain: smooth L1 of the offsets. In target: of the offsets
    // over the (float) variances, 5, −20, 0.5, 0: 4.5 + 19.5 + 0.125.
    expect(plain.loss).toBeCloseTo(1.63, 12);
    expect(inTarget.loss).toBeCloseTo(24.125, 6);
    for (const { layer, bottoms, top } of [plain, inTarget]) {
      top.mutableCpuDiff()[0] = 1;
      layer.backward([top], [true, false, false, false], bottoms);
    }
    expect(Array.from(plain.bottoms[0]!.cpuDiff()).slice(0, 4)).toEqual([0.5, -1, 0.1, 0].map((x) => expect.closeTo(x, 12)));
    // f′ at 5, −20, 0.5, 0 is 1, −1, 0.5, 0, copied back without the 1/variance factor.
    expect(Array.from(inTarget.bottoms[0]!.cpuDiff()).slice(0, 4)).toEqual([1, -1, 0.5, 0].map((x) => expect.closeTo(x, 6)));
  });

  it('refuses bad settings and inputs, naming the layer', () => {
    const setUp = (p: Record<string, unknown>, bottoms?: Blob[]) => () => {
      const layer = createLayer(multiBoxLossLayerDef, { name: 'mbox_loss', multibox_loss_param: p });
      layer.setUp(bottoms ?? [makeBlob([1, 20]), makeBlob([1, 10]), priorBlob(PRIORS), labelBlob([[0, 1, 0, 0, 0, 0.5, 0.5, 0]])], [f64()]);
    };
    expect(setUp({})).toThrow("MultiBoxLoss layer 'mbox_loss': multibox_loss_param.num_classes is required.");
    expect(setUp({ num_classes: 2, share_location: false })).toThrow(/negative mining needs share_location: true/);
    expect(setUp({ num_classes: 2, background_label_id: 2 })).toThrow(/background_label_id should be within \[0, num_classes\) for SOFTMAX \(got 2/);
    expect(setUp({ num_classes: 2, do_neg_mining: false })).toThrow(/do_neg_mining \(deprecated\) is false but mining_type is MAX_NEGATIVE/);
    expect(setUp({ num_classes: 3 })).toThrow(/5 priors × 3 classes = 15, but bottom 1 holds 10 per item/);
    expect(setUp({ num_classes: 2 }, [makeBlob([1, 16]), makeBlob([1, 10]), priorBlob(PRIORS), labelBlob([[0, 1, 0, 0, 0, 1, 1, 0]])])).toThrow(
      /5 priors × 1 location class\(es\) × 4 = 20, but bottom 0 holds 16/,
    );
    expect(setUp({ num_classes: 2 }, [makeBlob([1, 20]), makeBlob([1, 10]), makeBlob([1, 40]), labelBlob([[0, 1, 0, 0, 0, 1, 1, 0]])])).toThrow(
      /bottom 2 \(the priors\) must be 1 × 2 × \(4 · priors\)/,
    );
    expect(setUp({ num_classes: 2 }, [makeBlob([1, 20]), makeBlob([1, 10]), priorBlob(PRIORS), makeBlob([1, 1, 2, 7])])).toThrow(/bottom 3 \(the labels\) must be 1 × 1 × boxes × 8/);
    const forward = (rows: number[][]) => () => {
      const layer = createLayer(multiBoxLossLayerDef, { name: 'mbox_loss', multibox_loss_param: { num_classes: 2 } });
      const bottoms = [makeBlob([1, 20]), makeBlob([1, 10]), priorBlob(PRIORS), labelBlob(rows)];
      layer.setUp(bottoms, [f64()]);
      layer.forward(bottoms, [f64()]);
    };
    expect(forward([[0, 0, 0, 0, 0, 1, 1, 0]])).toThrow(/Found background label in the dataset: label row 0 \(item 0\) has label 0/);
    expect(forward([[0, 5, 0, 0, 0, 1, 1, 0]])).toThrow(/label row 0 \(item 0\) has label 5, outside \[0, 2\)/);
    const { layer, bottoms, top } = build({});
    expect(() => layer.backward([top], [true, true, true, false], bottoms)).toThrow(
      "MultiBoxLoss layer 'mbox_loss': MultiBoxLoss cannot backpropagate to the priors (bottom 2); set propagate_down: true true false false.",
    );
    expect([0, 1, 2, 3].map((i) => layer.allowForceBackward(i))).toEqual([true, true, false, false]);
  });
});

/*
 * Gradient checks over the fork's own test grid (its test_multibox_loss_layer): 3 images, 3
 * classes, a 2×2 map with 4 priors per cell from PriorBox, ground truth in images 0 and 2 (one of
 * them difficult), location and confidence predictions random.
 */
describe('MultiBoxLoss gradients', () => {
  beforeAll(registerContribSchema);

  const num = 3, classes = 3;
  function fixture(shareLocation: boolean, seed: number): Blob[] {
    const priors = f64();
    const pb = createLayer(priorBoxLayerDef, { prior_box_param: { min_size: [5], max_size: [10], aspect_ratio: [3], flip: true } });
    const pbBottom = [makeBlob([num, 1, 2, 2]), makeBlob([num, 3, 20, 20])];
    pb.setUp(pbBottom, [priors]);
    pb.forward(pbBottom, [priors]);
    const P = priors.shape[2]! / 4;
    const locClasses = shareLocation ? 1 : classes;
    const rng = new Rng(seed);
    return [
      makeBlob([num, P * locClasses * 4], { rng }),
      makeBlob([num, P * classes], { rng }),
      priors,
      labelBlob([
        [0, 1, 0, 0.1, 0.1, 0.3, 0.3, 0],
        [2, 1, 0, 0.1, 0.1, 0.3, 0.3, 0],
        [2, 2, 0, 0.2, 0.2, 0.4, 0.4, 0],
        [2, 2, 1, 0.6, 0.6, 0.8, 0.9, 1],
      ]),
    ];
  }

  const settings: Record<string, unknown>[] = [];
  for (const share_location of [true, false]) {
    for (const match_type of ['BIPARTITE', 'PER_PREDICTION']) {
      for (const mining_type of ['NONE', 'MAX_NEGATIVE', 'HARD_EXAMPLE']) {
        if (!share_location && mining_type !== 'NONE') continue;
        for (const use_difficult_gt of [true, false]) settings.push({ share_location, match_type, mining_type, use_difficult_gt });
      }
    }
  }

  // The normalization only scales the gradient: every mode on the first setting, VALID on the rest.
  const normalizationsFor = (s: Record<string, unknown>) => (s === settings[0] ? ['VALID', 'FULL', 'BATCH_SIZE', 'NONE'] : ['VALID']);

  it('passes the gradient check on the offsets (smooth L1 and L2, every normalization; 1e-2, 1e-2)', () => {
    let checks = 0;
    for (const s of settings) {
      for (const loc_loss_type of ['SMOOTH_L1', 'L2']) {
        for (const normalization of normalizationsFor(s)) {
          const layer = createLayer(multiBoxLossLayerDef, {
            propagate_down: [true, false, false, false],
            loss_param: { normalization },
            multibox_loss_param: { num_classes: classes, loc_loss_type, ...s },
          });
          new GradientChecker(1e-2, 1e-2).checkGradientExhaustive(layer, fixture(s.share_location as boolean, 7), [f64()], 0);
          checks++;
        }
      }
    }
    expect(checks).toBe(settings.length * 2 + 2 * 3);
  });

  // Hard negative mining makes the loss discontinuous where two candidates' losses tie at the cut:
  // a step of 1e-2 can swap them. Half the seeds tried (11, 12, 14, 17, 18) put such a pair within
  // the step for MAX_NEGATIVE (objective± 0.001–0.009 apart, the perturbed row not selected); 13 does not.
  it('passes the gradient check on the confidences (softmax and logistic, every normalization; 1e-2, 1e-2)', () => {
    for (const s of settings) {
      for (const conf_loss_type of ['SOFTMAX', 'LOGISTIC']) {
        for (const normalization of normalizationsFor(s)) {
          const layer = createLayer(multiBoxLossLayerDef, {
            propagate_down: [false, true, false, false],
            loss_param: { normalization },
            multibox_loss_param: { num_classes: classes, conf_loss_type, ...s },
          });
          try {
            new GradientChecker(1e-2, 1e-2).checkGradientExhaustive(layer, fixture(s.share_location as boolean, 13), [f64()], 1);
          } catch (e) {
            throw new Error(`${JSON.stringify({ ...s, conf_loss_type, normalization })}: ${(e as Error).message}`);
          }
        }
      }
    }
  });

  it('passes the gradient check with matching on the decoded predictions and bp_inside', () => {
    for (const use_prior_for_matching of [false, true]) {
      const layer = createLayer(multiBoxLossLayerDef, {
        propagate_down: [true, true, false, false],
        multibox_loss_param: { num_classes: classes, use_prior_for_matching, bp_inside: true, code_type: 'CENTER_SIZE' },
      });
      new GradientChecker(1e-2, 1e-2).checkGradientExhaustive(layer, fixture(true, 13), [f64()], 0);
    }
  });
});
