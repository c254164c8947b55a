import type { Blob } from '@caffe-ts/blob';
import { Layer, LayerError, type LayerDef, type PythonLayerFactory, type PythonLayerImpl, type PythonLayerSelf } from '@caffe-ts/layers';
import { Phase } from '@caffe-ts/proto';
import { fasterRcnnConfig, type FasterRcnnConfigOverrides } from '../faster-rcnn-config.js';
import { dtypeRounding } from '../fork-math.js';
import { forkParam, type ProposalParameter } from '../fork-types.js';
import { computeProposals, DEFAULT_PROPOSAL_OPTIONS, type ProposalOptions } from '../proposals.js';

/**
 * Runs the proposals of bottoms [RPN scores 1 × 2A × H × W, RPN deltas 1 × 4A × H × W, im_info
 * [height, width, scale]] into tops [rois R × 5 (rows [0, x1, y1, x2, y2]), optional scores R × 1].
 */
function propose(bottom: Blob[], top: Blob[], options: ProposalOptions, fail: (message: string) => never): void {
  const [scores, deltas, info] = [bottom[0]!, bottom[1]!, bottom[2]!];
  if (scores.numAxes !== 4 || scores.shape[0] !== 1) fail(`bottom 0 (the RPN scores) must be 1 × 2A × H × W: only single-image batches are supported (got ${scores.shapeString()}).`);
  const A = options.ratios.length * options.scales.length;
  const [, C, H, W] = scores.shape as [number, number, number, number];
  if (C !== 2 * A) fail(`bottom 0 (the RPN scores) must have 2 × ${A} channels for ${A} anchors (got ${C}).`);
  const d = deltas.shape;
  if (deltas.numAxes !== 4 || d[0] !== 1 || d[1] !== 4 * A || d[2] !== H || d[3] !== W) {
    fail(`bottom 1 (the RPN box deltas) must be 1 × ${4 * A} × ${H} × ${W} (got ${deltas.shapeString()}).`);
  }
  if (info.count() < 3) fail(`bottom 2 (im_info) must hold [height, width, scale] (got ${info.shapeString()}).`);
  const i = info.cpuData();
  const f = dtypeRounding(scores.dtype);
  const { boxes, scores: kept } = computeProposals(scores.cpuData(), deltas.cpuData(), [H, W], [i[0]!, i[1]!, i[2]!], options, f);
  const R = kept.length;
  top[0]!.reshape([R, 5]);
  const rois = top[0]!.mutableCpuData();
  for (let r = 0; r < R; r++) rois.set([0, boxes[4 * r]!, boxes[4 * r + 1]!, boxes[4 * r + 2]!, boxes[4 * r + 3]!], 5 * r);
  if (top.length > 1) {
    top[1]!.reshape([R, 1]);
    top[1]!.mutableCpuData().set(kept);
  }
}

/**
 * Proposal (OpenCV's dnn and other C++ Faster R-CNN ports; `proposal_param`): the region proposals
 * of a Faster R-CNN RPN, computed as py-faster-rcnn's proposal layer does (anchors from base_size,
 * ratio and scale, deltas applied, boxes clipped to im_info, boxes under min_size · scale dropped,
 * the pre_nms_topn best, NMS at nms_thresh, the post_nms_topn best).
 * - Bottoms: RPN object probabilities 1 × 2A × H × W (background, then object, per anchor), RPN
 *   box deltas 1 × 4A × H × W, and im_info [height, width, scale].
 * - Tops: rois R × 5, rows [0, x1, y1, x2, y2] (what ROIPooling reads), and optionally the scores
 *   R × 1. R depends on the data: each forward reshapes the tops.
 * No gradient flows back (as in py-faster-rcnn).
 */
export class ProposalLayer extends Layer {
  static override readonly blobCounts = { exactNumBottomBlobs: 3, minTopBlobs: 1, maxTopBlobs: 2 };
  readonly type = 'Proposal';
  options: ProposalOptions = { ...DEFAULT_PROPOSAL_OPTIONS };

  override layerSetUp(): void {
    const p = forkParam<ProposalParameter>(this.param, 'proposal_param', 'ProposalParameter');
    this.options = checkedOptions({
      featStride: p.feat_stride,
      baseSize: p.base_size,
      minSize: p.min_size,
      ratios: p.ratio.length > 0 ? [...p.ratio] : DEFAULT_PROPOSAL_OPTIONS.ratios,
      scales: p.scale.length > 0 ? [...p.scale] : DEFAULT_PROPOSAL_OPTIONS.scales,
      preNmsTopN: p.pre_nms_topn,
      postNmsTopN: p.post_nms_topn,
      nmsThresh: p.nms_thresh,
    }, (m) => this.fail(m));
  }

  override reshape(_bottom: Blob[], top: Blob[]): void {
    // The count is known only once the proposals are computed (forward reshapes again).
    if (top[0]!.numAxes !== 2) top[0]!.reshape([1, 5]);
    if (top.length > 1 && top[1]!.numAxes !== 2) top[1]!.reshape([1, 1]);
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    propose(bottom, top, this.options, (m) => this.fail(m));
  }

  /** No gradient: the proposals are treated as constants, as py-faster-rcnn does. */
  protected override backwardCpu(): void {}

  override allowForceBackward(): boolean {
    return false;
  }
}

function checkedOptions(o: ProposalOptions, fail: (message: string) => never): ProposalOptions {
  for (const [name, v] of [['feat_stride', o.featStride], ['base_size', o.baseSize]] as const) {
    if (!(Number.isFinite(v) && v > 0)) fail(`${name} must be positive (got ${v}).`);
  }
  if (!(o.minSize >= 0)) fail(`min_size must be 0 or more (got ${o.minSize}).`);
  if (o.ratios.some((r) => !(Number.isFinite(r) && r > 0))) fail(`every ratio must be positive (got ${o.ratios.join(', ')}).`);
  if (o.scales.some((s) => !(Number.isFinite(s) && s > 0))) fail(`every scale must be positive (got ${o.scales.join(', ')}).`);
  if (!(o.nmsThresh >= 0 && o.nmsThresh <= 1)) fail(`nms_thresh must be in [0, 1] (got ${o.nmsThresh}).`);
  return o;
}

export const proposalLayerDef: LayerDef<ProposalLayer> = {
  type: 'Proposal',
  create: (p, ctx) => new ProposalLayer(p, ctx),
};

/** py-faster-rcnn's `rpn.proposal_layer.ProposalLayer`, as `python_param { module layer }` names it. */
export const PY_FASTER_RCNN_PROPOSAL = { module: 'rpn.proposal_layer', layer: 'ProposalLayer' } as const;

/**
 * Reads py-faster-rcnn's param_str, a YAML mapping such as `'feat_stride': 16` or
 * `'feat_stride': 16\n'scales': !!python/tuple [4, 8, 16, 32]`: numbers and lists of numbers.
 */
export function parseProposalParamStr(paramStr: string): Record<string, number | number[]> {
  const out: Record<string, number | number[]> = {};
  const text = paramStr.trim().replace(/^\{([\s\S]*)\}$/, '$1');
  const entry = /['"]?([A-Za-z_]\w*)['"]?\s*:\s*(?:!!python\/tuple\s*)?(\[[^\]]*\]|\([^)]*\)|[-+0-9.eE]+)\s*(?:,|\n|$)/y;
  let at = 0;
  while (at < text.length) {
    while (at < text.length && /[\s,]/.test(text[at]!)) at++;
    if (at >= text.length) break;
    entry.lastIndex = at;
    const m = entry.exec(text);
    if (!m) throw new LayerError(`cannot read param_str ${JSON.stringify(paramStr)} at ${JSON.stringify(text.slice(at, at + 20))}: expected 'key': number or 'key': [numbers]`);
    const raw = m[2]!;
    const list = /^[[(]/.test(raw);
    const values = (list ? raw.slice(1, -1).split(',').map((s) => s.trim()).filter((s) => s !== '') : [raw]).map(Number);
    if (values.some((v) => !Number.isFinite(v))) throw new LayerError(`param_str ${JSON.stringify(paramStr)}: '${m[1]}' must hold numbers (got ${raw})`);
    out[m[1]!] = list ? values : values[0]!;
    at = entry.lastIndex;
  }
  return out;
}

/**
 * The TypeScript port of py-faster-rcnn's Python proposal layer, for registerPythonLayer: its
 * param_str gives feat_stride and optionally scales (and ratios, as some forks add); the rest
 * comes from the configuration for the phase (RPN_PRE_NMS_TOP_N, RPN_POST_NMS_TOP_N,
 * RPN_NMS_THRESH, RPN_MIN_SIZE of FASTER_RCNN_CONFIG's TEST: 6000, 300, 0.7, 16, or TRAIN: 12000,
 * 2000, 0.7, 16), with `config`'s overrides.
 */
export function createProposalLayer(config: FasterRcnnConfigOverrides = {}): PythonLayerFactory {
  fasterRcnnConfig(config); // fail at registration, not at the first net
  return (paramStr, self) => proposalPort(paramStr, self, config);
}

/** The port with py-faster-rcnn's end2end configuration. */
export const pyFasterRcnnProposalLayer: PythonLayerFactory = (paramStr, self) => proposalPort(paramStr, self, {});

function proposalPort(paramStr: string, self: PythonLayerSelf, config: FasterRcnnConfigOverrides): PythonLayerImpl {
  const params = ((): Record<string, number | number[]> => {
    try {
      return parseProposalParamStr(paramStr);
    } catch (e) {
      return self.fail(e instanceof Error ? e.message : String(e));
    }
  })();
  const num = (key: string, fallback: number): number => {
    const v = params[key] ?? fallback;
    return typeof v === 'number' ? v : self.fail(`param_str's '${key}' must be a number (got [${v.join(', ')}])`);
  };
  const list = (key: string, fallback: readonly number[]): number[] => {
    const v = params[key] ?? fallback;
    return typeof v === 'number' ? [v] : [...v];
  };
  if (params.feat_stride === undefined) self.fail(`param_str must give 'feat_stride' (got ${JSON.stringify(paramStr)})`);
  const cfg = fasterRcnnConfig(config);
  const phase = self.phase === Phase.TRAIN ? cfg.TRAIN : cfg.TEST;
  const options = checkedOptions({
    featStride: num('feat_stride', 16),
    baseSize: num('base_size', 16),
    minSize: phase.RPN_MIN_SIZE,
    ratios: list('ratios', DEFAULT_PROPOSAL_OPTIONS.ratios),
    scales: list('scales', DEFAULT_PROPOSAL_OPTIONS.scales),
    preNmsTopN: phase.RPN_PRE_NMS_TOP_N,
    postNmsTopN: phase.RPN_POST_NMS_TOP_N,
    nmsThresh: phase.RPN_NMS_THRESH,
  }, (m) => self.fail(m));
  return {
    setup(bottom: Blob[], top: Blob[]) {
      if (bottom.length !== 3) self.fail(`needs 3 bottoms (RPN scores, RPN box deltas, im_info), got ${bottom.length}`);
      if (top.length < 1 || top.length > 2) self.fail(`has 1 or 2 tops (rois, then optionally scores), got ${top.length}`);
      top[0]!.reshape([1, 5]);
      if (top.length > 1) top[1]!.reshape([1, 1]);
    },
    reshape() {},
    forward(bottom: Blob[], top: Blob[]) {
      propose(bottom, top, options, (m) => self.fail(m));
    },
    backward() {},
  };
}
