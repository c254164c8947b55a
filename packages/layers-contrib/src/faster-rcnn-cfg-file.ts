/*
 * py-faster-rcnn's yml config files (experiments/cfgs/*.yml, train_net.py's --cfg) read as
 * cfg_from_file reads them: applied over config.py's defaults, every key one config.py knows.
 * The file is YAML 1.1, as PyYAML reads it (True, yes and on are booleans). Where cfg_from_file
 * would fail on a key it does not know or a value of another type, this fails too, naming the
 * file, line and column; it is lenient only where Python's type check is an accident of the
 * language: a list where config.py has a tuple (`SCALES: [400, 500]`, which PyYAML cannot give as
 * a tuple without `!!python/tuple`) and an integer where it has a float (`FG_FRACTION: 1`).
 */
import { LayerError } from '@caffe-ts/layers';
import { isAlias, isMap, isScalar, LineCounter, parseDocument, type Document, type Node, type Pair, type YAMLMap } from 'yaml';
import { fasterRcnnConfig, PY_FASTER_RCNN_DEFAULTS, type FasterRcnnConfig } from './faster-rcnn-config.js';

/** A yml config that is malformed or does not fit config.py: file, line and column (1-based) and the key. */
export class FasterRcnnConfigError extends LayerError {
  override readonly name: string = 'FasterRcnnConfigError';
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** The dotted key (e.g. 'TRAIN.SCALES'); '' for the file as a whole. */
  readonly key: string;
  /** The message without the `file:line:column:` prefix. */
  readonly reason: string;

  /** `where.line` 0: not from a file (train_net.py's --set words; `file` then says where). */
  constructor(reason: string, where: { file: string; line: number; column: number; key: string }) {
    super(where.line > 0 ? `${where.file}:${where.line}:${where.column}: ${reason}` : `${where.file}: ${reason}`);
    this.file = where.file;
    this.line = where.line;
    this.column = where.column;
    this.key = where.key;
    this.reason = reason;
  }
}

/** A config.py value's kind: how a yml value for it is checked and converted. */
type Kind = 'bool' | 'int' | 'float' | 'str' | 'ints' | 'floats4' | 'means';

/** Every key of config.py's cfg, by section, with its kind; `used`: caffe-ts reads it. */
const KEYS: Record<'' | 'TRAIN' | 'TEST', Record<string, { kind: Kind; used: boolean }>> = {
  '': {
    DEDUP_BOXES: { kind: 'float', used: false },
    PIXEL_MEANS: { kind: 'means', used: true },
    RNG_SEED: { kind: 'int', used: true },
    EPS: { kind: 'float', used: false },
    ROOT_DIR: { kind: 'str', used: false },
    DATA_DIR: { kind: 'str', used: false },
    MODELS_DIR: { kind: 'str', used: false },
    MATLAB: { kind: 'str', used: false },
    EXP_DIR: { kind: 'str', used: false },
    USE_GPU_NMS: { kind: 'bool', used: false },
    GPU_ID: { kind: 'int', used: false },
  },
  TRAIN: {
    SCALES: { kind: 'ints', used: true },
    MAX_SIZE: { kind: 'int', used: true },
    IMS_PER_BATCH: { kind: 'int', used: true },
    BATCH_SIZE: { kind: 'int', used: true },
    FG_FRACTION: { kind: 'float', used: true },
    FG_THRESH: { kind: 'float', used: true },
    BG_THRESH_HI: { kind: 'float', used: true },
    BG_THRESH_LO: { kind: 'float', used: true },
    USE_FLIPPED: { kind: 'bool', used: true },
    BBOX_REG: { kind: 'bool', used: true },
    BBOX_THRESH: { kind: 'float', used: false },
    SNAPSHOT_ITERS: { kind: 'int', used: true },
    SNAPSHOT_INFIX: { kind: 'str', used: true },
    USE_PREFETCH: { kind: 'bool', used: false },
    BBOX_NORMALIZE_TARGETS: { kind: 'bool', used: true },
    BBOX_INSIDE_WEIGHTS: { kind: 'floats4', used: true },
    BBOX_NORMALIZE_TARGETS_PRECOMPUTED: { kind: 'bool', used: true },
    BBOX_NORMALIZE_MEANS: { kind: 'floats4', used: true },
    BBOX_NORMALIZE_STDS: { kind: 'floats4', used: true },
    PROPOSAL_METHOD: { kind: 'str', used: false },
    ASPECT_GROUPING: { kind: 'bool', used: true },
    HAS_RPN: { kind: 'bool', used: true },
    RPN_POSITIVE_OVERLAP: { kind: 'float', used: true },
    RPN_NEGATIVE_OVERLAP: { kind: 'float', used: true },
    RPN_CLOBBER_POSITIVES: { kind: 'bool', used: true },
    RPN_FG_FRACTION: { kind: 'float', used: true },
    RPN_BATCHSIZE: { kind: 'int', used: true },
    RPN_NMS_THRESH: { kind: 'float', used: true },
    RPN_PRE_NMS_TOP_N: { kind: 'int', used: true },
    RPN_POST_NMS_TOP_N: { kind: 'int', used: true },
    RPN_MIN_SIZE: { kind: 'int', used: true },
    RPN_BBOX_INSIDE_WEIGHTS: { kind: 'floats4', used: true },
    RPN_POSITIVE_WEIGHT: { kind: 'float', used: true },
  },
  TEST: {
    SCALES: { kind: 'ints', used: true },
    MAX_SIZE: { kind: 'int', used: true },
    NMS: { kind: 'float', used: true },
    SVM: { kind: 'bool', used: false },
    BBOX_REG: { kind: 'bool', used: false },
    HAS_RPN: { kind: 'bool', used: true },
    PROPOSAL_METHOD: { kind: 'str', used: false },
    RPN_NMS_THRESH: { kind: 'float', used: true },
    RPN_PRE_NMS_TOP_N: { kind: 'int', used: true },
    RPN_POST_NMS_TOP_N: { kind: 'int', used: true },
    RPN_MIN_SIZE: { kind: 'int', used: true },
  },
};

const KIND_TEXT: Record<Kind, string> = {
  bool: 'a boolean (True or False)',
  int: 'an integer',
  float: 'a number',
  str: 'a string',
  ints: 'a list of integers',
  floats4: 'a list of 4 numbers',
  means: 'the 3 pixel means (B, G, R), as [b, g, r] or [[[b, g, r]]]',
};

/** The result of reading a yml config: the whole config, and what the file set that caffe-ts does not read. */
export interface FasterRcnnCfgFile {
  config: FasterRcnnConfig;
  /** The keys the file set, dotted ('TRAIN.SCALES'), in file order. */
  set: string[];
  /** Of those, the ones config.py knows but caffe-ts does not read (EXP_DIR, TRAIN.PROPOSAL_METHOD, …). */
  unused: string[];
}

/**
 * Read a py-faster-rcnn yml config (`text`, from `file`) over config.py's defaults and check the
 * result (fasterRcnnConfig's rules). An empty file gives config.py's defaults. Throws a
 * FasterRcnnConfigError naming the line and column of the offending key or value.
 */
export function parseFasterRcnnCfg(text: string, file = '<cfg>'): FasterRcnnCfgFile {
  const lines = new LineCounter();
  const doc = parseDocument(text, { version: '1.1', lineCounter: lines, prettyErrors: false });
  const at = (offset: number | undefined, key: string, reason: string): never => {
    const pos = lines.linePos(offset ?? 0);
    throw new FasterRcnnConfigError(reason, { file, line: pos.line, column: pos.col, key });
  };
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    at(e.pos[0], '', `not valid YAML: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`);
  }
  const set: string[] = [];
  const unused: string[] = [];
  const overrides: { TRAIN: Record<string, unknown>; TEST: Record<string, unknown>; [key: string]: unknown } = {
    TRAIN: { ...PY_FASTER_RCNN_DEFAULTS.TRAIN },
    TEST: { ...PY_FASTER_RCNN_DEFAULTS.TEST },
  };
  const root = doc.contents;
  if (root !== null && !(isScalar(root) && root.value === null)) {
    if (!isMap(root)) at(root.range?.[0], '', 'expected a mapping of config keys (e.g. "TRAIN:" with its keys below it)');
    readSection(root as YAMLMap, '', overrides, { at, set, unused, doc });
  }
  let config: FasterRcnnConfig;
  try {
    config = fasterRcnnConfig(overrides as never);
  } catch (e) {
    // A value of the right type outside its range: point at the key that set it, when the file did.
    const m = e instanceof LayerError ? /Faster R-CNN config: (\S+) (.*)$/.exec(e.message) : null;
    if (!m) throw e;
    const node = findKey(root, m[1]!);
    return at(node?.range?.[0], m[1]!, `${m[1]} ${m[2]}${node ? '' : ' (after the file was applied to config.py\'s defaults)'}`);
  }
  return { config, set, unused };
}

interface ReadState {
  at: (offset: number | undefined, key: string, reason: string) => never;
  /** Resolves aliases (`*name`) to the nodes they stand for. */
  doc: Document;
  set: string[];
  unused: string[];
}

function readSection(map: YAMLMap, section: '' | 'TRAIN' | 'TEST', out: Record<string, unknown>, state: ReadState): void {
  for (const pair of map.items as Pair<Node, Node | null>[]) {
    const keyNode = pair.key;
    const name = isScalar(keyNode) ? String(keyNode.value) : '';
    const dotted = section ? `${section}.${name}` : name;
    const where = keyNode?.range?.[0];
    const valueNode = isAlias(pair.value) ? (pair.value.resolve(state.doc) ?? null) : pair.value;
    if (section === '' && (name === 'TRAIN' || name === 'TEST')) {
      if (!isMap(valueNode)) state.at(pair.value?.range?.[0] ?? where, name, `${name} must be a mapping of its keys`);
      readSection(valueNode as YAMLMap, name, out[name] as Record<string, unknown>, state);
      continue;
    }
    const spec = KEYS[section][name];
    if (!spec) state.at(where, dotted, `'${dotted}' is not a valid config key (config.py has no such key)`);
    const value = convert(valueNode, spec!.kind, state.doc);
    if (value === undefined) {
      state.at(pair.value?.range?.[0] ?? where, dotted, `${dotted} must be ${KIND_TEXT[spec!.kind]} (got ${describe(valueNode, state.doc)})`);
    }
    state.set.push(dotted);
    // Checked like the rest, but kept out of the config: nothing here reads them.
    if (spec!.used) out[name] = value;
    else state.unused.push(dotted);
  }
}

/** The yml value as the kind asks for it, or undefined when it does not fit. */
function convert(node: Node | null, kind: Kind, doc: Document): unknown {
  return convertValue(node?.toJS(doc), kind);
}

/** A plain value as the kind asks for it, or undefined when it does not fit. */
function convertValue(json: unknown, kind: Kind): unknown {
  const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  switch (kind) {
    case 'bool':
      return typeof json === 'boolean' ? json : undefined;
    case 'int':
      return num(json) && Number.isInteger(json) ? json : undefined;
    case 'float':
      return num(json) ? json : undefined;
    case 'str':
      return typeof json === 'string' ? json : undefined;
    case 'ints':
      return Array.isArray(json) && json.every((v) => num(v) && Number.isInteger(v)) ? Object.freeze(json as number[]) : undefined;
    case 'floats4':
      return Array.isArray(json) && json.length === 4 && json.every(num) ? Object.freeze(json as number[]) : undefined;
    case 'means': {
      // config.py keeps them as a 1 × 1 × 3 array; a yml may nest them so, or give the 3 alone.
      let v: unknown = json;
      while (Array.isArray(v) && v.length === 1 && Array.isArray(v[0])) v = v[0];
      return Array.isArray(v) && v.length === 3 && v.every(num) ? Object.freeze(v as number[]) : undefined;
    }
  }
}

function describe(node: Node | null, doc: Document): string {
  const json: unknown = node?.toJS(doc);
  if (json === null || json === undefined) return 'nothing';
  try {
    return JSON.stringify(json);
  } catch {
    // A value that holds itself through an alias (`TRAIN: &a {SCALES: *a}`).
    return 'a value that refers to itself';
  }
}

/** The node of a dotted key in the file, if the file has it. */
function findKey(root: unknown, dotted: string): Node | undefined {
  let map: unknown = root;
  const parts = dotted.split('.');
  for (let i = 0; i < parts.length; i++) {
    if (!isMap(map)) return undefined;
    const pair = (map.items as Pair<Node, Node | null>[]).find((p) => isScalar(p.key) && p.key.value === parts[i]);
    if (!pair) return undefined;
    if (i === parts.length - 1) return pair.key ?? undefined;
    map = pair.value;
  }
  return undefined;
}

/** What applyFasterRcnnCfgList did: the config, and the keys it set that caffe-ts does not read. */
export interface FasterRcnnCfgList {
  config: FasterRcnnConfig;
  set: string[];
  unused: string[];
}

/**
 * train_net.py's `--set KEY VALUE …` (cfg_from_list) over `base`: each dotted key must be one
 * config.py has, and each value is read as Python's literal_eval reads it (numbers, True and
 * False, quoted strings, lists and tuples of them; anything else is the text itself) and must
 * fit the key as in parseFasterRcnnCfg. Throws a FasterRcnnConfigError naming `where` (e.g.
 * '--set') and the key.
 */
export function applyFasterRcnnCfgList(base: FasterRcnnConfig, pairs: readonly string[], where = '--set'): FasterRcnnCfgList {
  // The column is the word's position among the pairs (1-based).
  const fail = (index: number, key: string, reason: string): never => {
    throw new FasterRcnnConfigError(reason, { file: key ? `${where} ${key}` : where, line: 0, column: index + 1, key });
  };
  if (pairs.length % 2 !== 0) fail(pairs.length - 1, '', `expects KEY VALUE pairs (got ${pairs.length} words, the last '${pairs.at(-1)}' has no value)`);
  const config = { ...base, TRAIN: { ...base.TRAIN }, TEST: { ...base.TEST } } as unknown as Record<string, Record<string, unknown>>;
  const set: string[] = [];
  const unused: string[] = [];
  for (let i = 0; i < pairs.length; i += 2) {
    const key = pairs[i]!;
    const parts = key.split('.');
    const section = parts.length === 2 && (parts[0] === 'TRAIN' || parts[0] === 'TEST') ? parts[0] : parts.length === 1 ? '' : null;
    const name = parts.at(-1)!;
    const spec = section === null ? undefined : KEYS[section][name];
    if (!spec) fail(i, key, `'${key}' is not a valid config key (config.py has no such key)`);
    const value = convertValue(pythonLiteral(pairs[i + 1]!), spec!.kind);
    if (value === undefined) fail(i + 1, key, `${key} must be ${KIND_TEXT[spec!.kind]} (got ${JSON.stringify(pairs[i + 1])})`);
    set.push(key);
    if (!spec!.used) {
      unused.push(key);
      continue;
    }
    if (section) config[section]![name] = value;
    else (config as Record<string, unknown>)[name] = value;
  }
  try {
    return { config: fasterRcnnConfig(config as never), set, unused };
  } catch (e) {
    const m = e instanceof LayerError ? /Faster R-CNN config: (\S+) (.*)$/.exec(e.message) : null;
    if (!m) throw e;
    let at = -1;
    for (let k = 0; k < pairs.length; k += 2) if (pairs[k] === m[1]) at = k;
    return fail(at + 1, m[1]!, `${m[1]} ${m[2]}${at < 0 ? ' (after the pairs were applied)' : ''}`);
  }
}

/**
 * A value as Python's ast.literal_eval reads the few kinds a config holds: numbers, True, False,
 * None, quoted strings, and lists or tuples of them; cfg_from_list keeps the text itself when it
 * is none of these.
 */
function pythonLiteral(text: string): unknown {
  let at = 0;
  const src = text.trim();
  const fail = (): never => {
    throw new SyntaxError('not a literal');
  };
  const space = () => {
    while (at < src.length && /\s/.test(src[at]!)) at++;
  };
  const value = (): unknown => {
    space();
    const c = src[at];
    if (c === '[' || c === '(') {
      const close = c === '[' ? ']' : ')';
      at++;
      const items: unknown[] = [];
      space();
      while (src[at] !== close) {
        items.push(value());
        space();
        if (src[at] === ',') at++;
        else if (src[at] !== close) fail();
        space();
      }
      at++;
      return items;
    }
    if (c === "'" || c === '"') {
      const end = src.indexOf(c, at + 1);
      if (end < 0) fail();
      const s = src.slice(at + 1, end);
      at = end + 1;
      return s;
    }
    const m = /^(True|False|None|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)/.exec(src.slice(at));
    if (!m) fail();
    at += m![0].length;
    return m![0] === 'True' ? true : m![0] === 'False' ? false : m![0] === 'None' ? null : Number(m![0]);
  };
  try {
    const v = value();
    space();
    return at === src.length ? v : text;
  } catch {
    return text;
  }
}
