#!/usr/bin/python3
"""Oracle fixtures for caffe-ts, computed by an independent implementation: OpenCV's dnn module.

    /usr/bin/python3 scripts/oracle/make-fixtures.py [--corpus DIR]

(run from the repository root; needs Debian's python3-opencv and python3-numpy, which only this
script uses; the tests read what it writes and never need OpenCV.)

Writes under tests/fixtures/oracle/:

* <model>/*.npy and manifest.json: for each real model of the corpus (LeNet x2, CIFAR-10 quick
  and full, MTCNN det1-det4) a deterministic input, fed through cv2.dnn.readNetFromCaffe(prototxt,
  caffemodel) with fusion off, and the outputs of its layers (every layer whose output is small,
  always the net's outputs) as little-endian float32 .npy files, C order.
* deploy-shapes.json: for each deploy/inference prototxt of the corpus that uses only BVLC layer
  types, the shape of every layer's tops at batch 1 as OpenCV computes them (getLayersShapes), or
  the reason the net is skipped. OpenCV cannot infer shapes without weights, so the script makes
  a zero-filled caffemodel for each net: its own shape walk gives each learnable layer's weight
  shape, OpenCV checks those against its own inference (a wrong guess makes it throw), and the
  script also requires the walk and OpenCV to agree on every top before it records anything.

Everything is deterministic (seeded inputs, sorted keys): running it again on the same corpus and
OpenCV version rewrites the same bytes.
"""
import argparse
import json
import os
import re
import struct
import sys
import tempfile

import cv2
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, 'tests', 'fixtures', 'oracle')
COMMAND = '/usr/bin/python3 scripts/oracle/make-fixtures.py'

# A layer output is stored when it has at most this many elements (the net's outputs always are);
# it keeps the fixtures small (the whole folder well under 1 MB).
MAX_STORED_ELEMENTS = 4096

# ---------------------------------------------------------------------------------------------
# A small protobuf text-format reader (enough for Caffe prototxts: nested messages, scalars,
# strings, enums, comments), keeping each top-level field's character span for text surgery.


class Msg:
    def __init__(self):
        self.fields = []  # (name, value, (start, end)) in file order

    def all(self, name):
        return [v for n, v, _ in self.fields if n == name]

    def get(self, name, default=None):
        vals = self.all(name)
        return vals[-1] if vals else default


TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[{}:<>;,\[\]]|[^\s{}:<>;,#\[\]"\']+')


def tokenize(text):
    out = []
    for m in TOKEN.finditer(text):
        t = m.group(0)
        if t[0].isspace() or t[0] == '#':
            continue
        out.append((t, m.start(), m.end()))
    return out


def scalar(tok):
    if tok[0] in '"\'':
        return bytes(tok[1:-1], 'utf-8').decode('unicode_escape')
    if re.fullmatch(r'[-+]?\d+', tok):
        return int(tok)
    try:
        return float(tok)
    except ValueError:
        return tok  # enum or bool identifier


def parse_text(text):
    toks = tokenize(text)
    pos = 0

    def message(close):
        nonlocal pos
        msg = Msg()
        while pos < len(toks) and toks[pos][0] != close:
            name, start, _ = toks[pos]
            pos += 1
            if toks[pos][0] == ':':
                pos += 1
            if toks[pos][0] in '{<':
                end_tok = '}' if toks[pos][0] == '{' else '>'
                pos += 1
                value = message(end_tok)
            else:
                value = scalar(toks[pos][0])
                # Adjacent string literals concatenate.
                while toks[pos][0][0] in '"\'' and pos + 1 < len(toks) and toks[pos + 1][0][0] in '"\'':
                    pos += 1
                    value += scalar(toks[pos][0])
            end = toks[pos][2]
            pos += 1
            if pos < len(toks) and toks[pos][0] in ';,':
                pos += 1
            msg.fields.append((name, value, (start, end)))
        return msg

    root = message(None)
    return root


# V1 (`layers { type: ENUM }`) names of the types these nets use.
V1_TYPES = {
    'CONVOLUTION': 'Convolution', 'POOLING': 'Pooling', 'RELU': 'ReLU', 'LRN': 'LRN',
    'DROPOUT': 'Dropout', 'INNER_PRODUCT': 'InnerProduct', 'SOFTMAX': 'Softmax',
    'SOFTMAX_LOSS': 'SoftmaxWithLoss', 'ACCURACY': 'Accuracy', 'ARGMAX': 'ArgMax',
    'IMAGE_DATA': 'ImageData', 'DATA': 'Data', 'CONCAT': 'Concat', 'ELTWISE': 'Eltwise',
    'SIGMOID': 'Sigmoid', 'TANH': 'TanH', 'SPLIT': 'Split', 'FLATTEN': 'Flatten', 'SLICE': 'Slice',
}


class Layer:
    def __init__(self, msg, span):
        self.msg = msg
        self.span = span
        self.name = msg.get('name', '')
        t = msg.get('type', '')
        self.type = V1_TYPES.get(t, t) if isinstance(t, str) else str(t)
        self.bottoms = msg.all('bottom')
        self.tops = msg.all('top')
        self.v1 = False


def net_layers(net):
    layers = []
    for name, value, span in net.fields:
        if name in ('layer', 'layers'):
            lay = Layer(value, span)
            lay.v1 = name == 'layers'
            layers.append(lay)
    return layers


def rel(path, corpus):
    return os.path.relpath(path, corpus)


def read(path):
    with open(path, 'r', encoding='utf-8') as f:
        return f.read()


def net_inputs(net, layers):
    """Input blobs and their shapes: Input layers, or the legacy input/input_dim/input_shape fields."""
    inputs = []
    for lay in layers:
        if lay.type == 'Input':
            shapes = lay.msg.get('input_param', Msg()).all('shape')
            for i, top in enumerate(lay.tops):
                s = shapes[i] if len(shapes) > 1 else shapes[0]
                inputs.append((top, [int(d) for d in s.all('dim')]))
    names = net.all('input')
    dims = net.all('input_dim')
    shapes = net.all('input_shape')
    for i, n in enumerate(names):
        if shapes:
            inputs.append((n, [int(d) for d in shapes[i].all('dim')]))
        else:
            inputs.append((n, [int(d) for d in dims[4 * i:4 * i + 4]]))
    return inputs


def dnn_net(proto_path, model_path):
    net = cv2.dnn.readNetFromCaffe(proto_path, model_path)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    # Fusion would fold ReLU/PReLU/BatchNorm/Scale into the layer before and change what the
    # earlier layer's output holds; keep each layer's own output.
    net.enableFusion(False)
    return net


# ---------------------------------------------------------------------------------------------
# Part 1: real models with their weights.

def save_npy(path, array):
    a = np.ascontiguousarray(array, dtype='<f4')
    np.save(path, a, allow_pickle=False)


def safe(name):
    return re.sub(r'[^A-Za-z0-9_.-]', '_', name)


def mtcnn_norm(img_bgr):
    """MTCNN's preprocessing: (pixel - 127.5) / 128, channels B, G, R as OpenCV reads them."""
    return ((img_bgr.astype(np.float32) - 127.5) * 0.0078125).transpose(2, 0, 1)


def crop_resize(path, box, size):
    x, y, w, h = box
    img = cv2.imread(path, cv2.IMREAD_COLOR)[y:y + h, x:x + w]
    return cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)


# Per-channel CIFAR-10 means (see tests/src/legacy-models.test.ts): subtracted from each image.
CIFAR_MEAN = np.array([125.3, 123.0, 113.9], dtype=np.float32).reshape(3, 1, 1)


def cifar_images(corpus, names):
    d = os.path.join(corpus, 'weights', 'cifar10_quick_ikkichung')
    imgs = [cv2.imread(os.path.join(d, n + '.png'), cv2.IMREAD_COLOR).astype(np.float32).transpose(2, 0, 1) - CIFAR_MEAN
            for n in names]
    return np.stack(imgs)


def models(corpus):
    W = lambda *p: os.path.join(corpus, 'weights', *p)
    rs = np.random.RandomState
    m1 = W('mtcnn_kpzhang93', 'test1.jpg')
    m2 = W('mtcnn_kpzhang93', 'test2.jpg')
    # det4 (the landmark net) reads five 24x24 patches stacked on the channel axis.
    det4_patches = [crop_resize(m2, (150 + 12 * k, 90 + 9 * k, 40, 40), (24, 24)) for k in range(5)]
    return [
        dict(
            name='lenet_nn_ex1', prototxt=W('lenet_nn_ex1', 'lenet.prototxt'),
            caffemodel=W('lenet_nn_ex1', 'lenet_iter_10000.caffemodel'),
            inputs={'data': rs(1).rand(2, 1, 28, 28).astype(np.float32)},
            input_note='uniform [0, 1) from numpy RandomState(1); batch 2 (the file says 64)',
        ),
        dict(
            name='lenet_ethereon', prototxt=W('lenet_ethereon', 'lenet.prototxt'),
            caffemodel=W('lenet_ethereon', 'lenet_iter_10000.caffemodel'),
            inputs={'data': rs(2).rand(2, 1, 28, 28).astype(np.float32)},
            input_note='uniform [0, 1) from numpy RandomState(2); batch 2 (the file says 64)',
        ),
        dict(
            name='cifar10_quick_ikkichung', prototxt=W('cifar10_quick_ikkichung', 'prediction_example.prototxt'),
            caffemodel=W('cifar10_quick_ikkichung', 'cifar10_quick_iter_5000.caffemodel'),
            # The V1 file reads images with an IMAGE_DATA layer and scores them against labels:
            # OpenCV has neither those nor ArgMax, so they go and an input blob takes their place.
            drop_layers=['data', 'accuracy', 'loss', 'argmax'],
            inputs={'data': cifar_images(corpus, ['cat10', 'truck10'])},
            input_note='cat10.png and truck10.png as OpenCV reads them (B, G, R planes, 0..255) minus the per-channel CIFAR-10 means 125.3, 123.0, 113.9',
        ),
        dict(
            name='cifar10_full_nn_ex1', prototxt=W('cifar10_full_nn_ex1', 'cifar10_full.prototxt'),
            caffemodel=W('cifar10_full_nn_ex1', 'cifar10_full_iter_70000.caffemodel'),
            inputs={'data': cifar_images(corpus, ['dog10', 'truck10'])},
            input_note='dog10.png and truck10.png of cifar10_quick_ikkichung, B, G, R planes minus the per-channel CIFAR-10 means; batch 2 (the file says 1)',
        ),
        dict(
            name='mtcnn_det1', prototxt=W('mtcnn_kpzhang93', 'det1.prototxt'),
            caffemodel=W('mtcnn_kpzhang93', 'det1.caffemodel'),
            # Fully convolutional: an odd, non-square size exercises Caffe's ceil-mode pooling
            # (conv1 21x27 -> pool1 11x14) and keeps height and width apart.
            inputs={'data': mtcnn_norm(crop_resize(m1, (140, 40, 150, 190), (23, 29)))[None]},
            input_note='test1.jpg crop (x 140, y 40, 150x190) resized to 23x29 (INTER_AREA), (p - 127.5) / 128',
        ),
        dict(
            name='mtcnn_det2', prototxt=W('mtcnn_kpzhang93', 'det2.prototxt'),
            caffemodel=W('mtcnn_kpzhang93', 'det2.caffemodel'),
            inputs={'data': np.stack([mtcnn_norm(crop_resize(m1, (150, 60, 120, 120), (24, 24))),
                                      mtcnn_norm(crop_resize(m2, (140, 80, 130, 130), (24, 24)))])},
            input_note='a crop of test1.jpg and one of test2.jpg, each resized to 24x24 (INTER_AREA), (p - 127.5) / 128',
        ),
        dict(
            name='mtcnn_det3', prototxt=W('mtcnn_kpzhang93', 'det3.prototxt'),
            caffemodel=W('mtcnn_kpzhang93', 'det3.caffemodel'),
            inputs={'data': mtcnn_norm(crop_resize(m2, (140, 80, 130, 130), (48, 48)))[None]},
            input_note='test2.jpg crop (x 140, y 80, 130x130) resized to 48x48 (INTER_AREA), (p - 127.5) / 128',
        ),
        dict(
            name='mtcnn_det4', prototxt=W('mtcnn_kpzhang93', 'det4.prototxt'),
            caffemodel=W('mtcnn_kpzhang93', 'det4.caffemodel'),
            inputs={'data': np.concatenate([mtcnn_norm(p) for p in det4_patches])[None]},
            # Five identical branches: store the layer outputs of the first and last only.
            skip_layers=r'_[234]$',
            input_note='five 40x40 crops of test2.jpg (x 150+12k, y 90+9k) resized to 24x24, (p - 127.5) / 128, stacked on the channel axis',
        ),
    ]


def drop_layers_text(text, names):
    """The prototxt with the named top-level layers cut out (by their spans in the file)."""
    net = parse_text(text)
    cuts = sorted(lay.span for lay in net_layers(net) if lay.name in names)
    out, last = [], 0
    for s, e in cuts:
        out.append(text[last:s])
        last = e
    out.append(text[last:])
    return ''.join(out)


def make_model(spec, corpus):
    name = spec['name']
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    for f in os.listdir(folder):
        if f.endswith('.npy'):
            os.remove(os.path.join(folder, f))

    text = read(spec['prototxt'])
    drop = spec.get('drop_layers', [])
    proto_path = spec['prototxt']
    tmp = None
    if drop:
        text = drop_layers_text(text, drop)
        # The input replaces the dropped data layer: legacy input fields work in V1 files too.
        head = ''.join(f'input: "{b}"\n' + ''.join(f'input_dim: {d}\n' for d in a.shape) for b, a in spec['inputs'].items())
        text = head + text
        tmp = tempfile.NamedTemporaryFile('w', suffix='.prototxt', delete=False)
        tmp.write(text)
        tmp.close()
        proto_path = tmp.name
    try:
        net = dnn_net(proto_path, spec['caffemodel'])
    finally:
        if tmp:
            os.remove(tmp.name)
    parsed = parse_text(text)
    layers = [lay for lay in net_layers(parsed)]
    tops_of = {lay.name: lay.tops for lay in layers}

    inputs = []
    for blob, array in spec['inputs'].items():
        array = np.ascontiguousarray(array, dtype=np.float32)
        net.setInput(array, blob)
        fname = f'input.{safe(blob)}.npy'
        save_npy(os.path.join(folder, fname), array)
        inputs.append(dict(blob=blob, file=fname, shape=list(array.shape)))

    names = [n for n in net.getLayerNames() if n in tops_of]
    # One forward per layer: asked for every layer at once, OpenCV 4.6 hands back stale data for
    # Slice's tops after the first (its buffers are reused), so each layer's outputs come alone.
    results = [net.forwardAndRetrieve([n])[0] for n in names]
    outputs_set = set(net.getUnconnectedOutLayersNames())
    outputs = []
    for layer_name, blobs in zip(names, results):
        for k, blob in enumerate(blobs):
            is_output = layer_name in outputs_set
            skipped = spec.get('skip_layers') and re.search(spec['skip_layers'], layer_name)
            if not is_output and (blob.size > MAX_STORED_ELEMENTS or skipped):
                continue
            fname = f'{safe(layer_name)}.{k}.npy'
            save_npy(os.path.join(folder, fname), blob)
            outputs.append(dict(layer=layer_name, top_index=k, top=tops_of[layer_name][k], file=fname,
                                shape=list(blob.shape), net_output=is_output))
    return dict(
        name=name,
        prototxt=rel(spec['prototxt'], corpus),
        caffemodel=rel(spec['caffemodel'], corpus),
        drop_layers=drop,
        inputs=inputs,
        input_note=spec['input_note'],
        outputs=outputs,
    )


# ---------------------------------------------------------------------------------------------
# Part 2: deploy nets' shapes at batch 1.

# BVLC Caffe's layer types (caffe/src/caffe/layers at 1.0).
BVLC_TYPES = {
    'AbsVal', 'Accuracy', 'ArgMax', 'BatchNorm', 'BatchReindex', 'Bias', 'BNLL', 'Clip', 'Concat',
    'ContrastiveLoss', 'Convolution', 'Crop', 'Data', 'Deconvolution', 'Dropout', 'DummyData',
    'Eltwise', 'ELU', 'Embed', 'EuclideanLoss', 'Exp', 'Filter', 'Flatten', 'HDF5Data', 'HDF5Output',
    'HingeLoss', 'Im2col', 'ImageData', 'InfogainLoss', 'InnerProduct', 'Input', 'Log', 'LRN',
    'LSTM', 'LSTMUnit', 'MemoryData', 'MultinomialLogisticLoss', 'MVN', 'Parameter', 'Pooling',
    'Power', 'PReLU', 'Python', 'Reduction', 'ReLU', 'Reshape', 'RNN', 'Scale', 'Sigmoid',
    'SigmoidCrossEntropyLoss', 'Silence', 'Slice', 'Softmax', 'SoftmaxWithLoss', 'Split', 'SPP',
    'Swish', 'TanH', 'Threshold', 'Tile', 'WindowData',
}
DATA_TYPES = {'Data', 'ImageData', 'HDF5Data', 'MemoryData', 'WindowData', 'DummyData', 'Python', 'AnnotatedData'}


def rep(msg, name, default):
    v = msg.all(name)
    return [int(x) for x in v] if v else default


def spatial(p, one, h, w, default):
    """A Convolution/Pooling size parameter: `x_h`/`x_w` when given, else the repeated/scalar `x`."""
    if p.get(h) is not None or p.get(w) is not None:
        return [int(p.get(h, default)), int(p.get(w, default))]
    v = rep(p, one, [default])
    return v * 2 if len(v) == 1 else v


def walk_shapes(layers, inputs):
    """Caffe's shape rules for the layer types of the deploy nets: tops per layer, learnable
    blobs per layer. Only used to size the zero weights OpenCV needs and to cross-check it."""
    shapes = dict(inputs)
    tops, weights = {}, {}
    for lay in layers:
        t = lay.type
        if t == 'Input':
            continue
        b = [shapes[x] for x in lay.bottoms]
        out = None
        if t in ('Convolution', 'Deconvolution'):
            p = lay.msg.get('convolution_param', Msg())
            n, c, h, w = b[0]
            k = spatial(p, 'kernel_size', 'kernel_h', 'kernel_w', 1)
            s = spatial(p, 'stride', 'stride_h', 'stride_w', 1)
            pd = spatial(p, 'pad', 'pad_h', 'pad_w', 0)
            d = rep(p, 'dilation', [1]) * (2 if len(rep(p, 'dilation', [1])) == 1 else 1)
            g = int(p.get('group', 1))
            no = int(p.get('num_output'))
            ek = [d[i] * (k[i] - 1) + 1 for i in range(2)]
            if t == 'Convolution':
                o = [(x + 2 * pd[i] - ek[i]) // s[i] + 1 for i, x in enumerate((h, w))]
                weights[lay.name] = [[no, c // g, k[0], k[1]]]
            else:
                o = [s[i] * (x - 1) + ek[i] - 2 * pd[i] for i, x in enumerate((h, w))]
                weights[lay.name] = [[c, no // g, k[0], k[1]]]
            if p.get('bias_term', 'true') not in ('false', False):
                weights[lay.name].append([no])
            out = [[n, no] + o]
        elif t == 'Pooling':
            p = lay.msg.get('pooling_param', Msg())
            n, c, h, w = b[0]
            if p.get('global_pooling') in ('true', True):
                out = [[n, c, 1, 1]]
            else:
                k = spatial(p, 'kernel_size', 'kernel_h', 'kernel_w', 1)
                s = spatial(p, 'stride', 'stride_h', 'stride_w', 1)
                pd = spatial(p, 'pad', 'pad_h', 'pad_w', 0)
                o = []
                for i, x in enumerate((h, w)):
                    v = -(-(x + 2 * pd[i] - k[i]) // s[i]) + 1
                    # Caffe clips the last window when any padding is set.
                    if any(pd) and (v - 1) * s[i] >= x + pd[i]:
                        v -= 1
                    o.append(v)
                out = [[n, c] + o]
        elif t == 'InnerProduct':
            p = lay.msg.get('inner_product_param', Msg())
            axis = int(p.get('axis', 1))
            no = int(p.get('num_output'))
            k = int(np.prod(b[0][axis:]))
            weights[lay.name] = [[k, no] if p.get('transpose') in ('true', True) else [no, k]]
            if p.get('bias_term', 'true') not in ('false', False):
                weights[lay.name].append([no])
            out = [b[0][:axis] + [no]]
        elif t == 'Concat':
            p = lay.msg.get('concat_param', Msg())
            axis = int(p.get('axis', p.get('concat_dim', 1)))
            o = list(b[0])
            o[axis] = sum(x[axis] for x in b)
            out = [o]
        elif t == 'Slice':
            p = lay.msg.get('slice_param', Msg())
            axis = int(p.get('axis', p.get('slice_dim', 1)))
            pts = [0] + rep(p, 'slice_point', []) + [b[0][axis]]
            if len(pts) == 2:
                step = b[0][axis] // len(lay.tops)
                pts = [i * step for i in range(len(lay.tops) + 1)]
            out = []
            for i in range(len(lay.tops)):
                o = list(b[0])
                o[axis] = pts[i + 1] - pts[i]
                out.append(o)
        elif t == 'Flatten':
            p = lay.msg.get('flatten_param', Msg())
            axis = int(p.get('axis', 1))
            end = int(p.get('end_axis', -1)) % len(b[0])
            out = [b[0][:axis] + [int(np.prod(b[0][axis:end + 1]))] + b[0][end + 1:]]
        elif t == 'BatchNorm':
            weights[lay.name] = [[b[0][1]], [b[0][1]], [1]]
            out = [b[0]]
        elif t in ('Scale', 'Bias'):
            p = lay.msg.get('scale_param' if t == 'Scale' else 'bias_param', Msg())
            axis = int(p.get('axis', 1))
            na = int(p.get('num_axes', 1))
            if len(b) == 1:
                shape = b[0][axis:] if na == -1 else b[0][axis:axis + na]
                weights[lay.name] = [shape]
                if t == 'Scale' and p.get('bias_term') in ('true', True):
                    weights[lay.name].append(shape)
            out = [b[0]]
        elif t == 'PReLU':
            p = lay.msg.get('prelu_param', Msg())
            weights[lay.name] = [[1] if p.get('channel_shared') in ('true', True) else [b[0][1]]]
            out = [b[0]]
        elif t in ('ReLU', 'Sigmoid', 'TanH', 'Dropout', 'LRN', 'Softmax', 'Eltwise', 'Power', 'AbsVal',
                   'BNLL', 'ELU', 'Exp', 'Log', 'Swish', 'Clip', 'Threshold', 'MVN'):
            out = [b[0]]
        elif t == 'Split':
            out = [b[0]] * len(lay.tops)
        else:
            raise ValueError(f'{lay.name}: no shape rule for type {t}')
        tops[lay.name] = out
        for name, s in zip(lay.tops, out):
            shapes[name] = s
    return tops, weights


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, wire, payload):
    return varint((num << 3) | wire) + (varint(len(payload)) + payload if wire == 2 else payload)


def zero_caffemodel(weights):
    """A binary NetParameter whose layers (by name) carry zero blobs of the given shapes."""
    out = bytearray()
    for name, blobs in weights.items():
        layer = field(1, 2, name.encode())
        for shape in blobs:
            dims = b''.join(varint(d) for d in shape)
            blob = field(7, 2, field(1, 2, dims)) + field(5, 2, bytes(4 * int(np.prod(shape))))
            layer += field(7, 2, blob)
        out += field(100, 2, layer)
    return bytes(out)


def deploy_candidates(corpus):
    files = []
    for top in ('nets', 'weights'):
        for d, _, fs in os.walk(os.path.join(corpus, top)):
            for f in fs:
                if f.endswith('.prototxt') and 'solver' not in f:
                    files.append(os.path.join(d, f))
    return sorted(files)


def deploy_shapes(corpus):
    entries = []
    for path in deploy_candidates(corpus):
        text = read(path)
        net = parse_text(text)
        if not net.all('layer') and not net.all('layers'):
            continue
        layers = net_layers(net)
        types = sorted({lay.type for lay in layers})
        entry = dict(file=rel(path, corpus))
        fork = [t for t in types if t not in BVLC_TYPES]
        data = [t for t in types if t in DATA_TYPES]
        inputs = net_inputs(net, layers)
        if fork:
            entry['skip'] = 'needs layer types outside BVLC Caffe: ' + ', '.join(fork)
        elif data:
            entry['skip'] = 'train/test net reading data with ' + ', '.join(data) + ' (not an inference net)'
        elif not inputs:
            entry['skip'] = 'no Input layer or input fields'
        if 'skip' in entry:
            entries.append(entry)
            continue
        # Batch 1 keeps nets such as AlexNet (input batch 10) cheap to build.
        inputs = [(n, [1] + s[1:]) for n, s in inputs]
        walked, weights = walk_shapes(layers, inputs)
        with tempfile.NamedTemporaryFile(suffix='.caffemodel', delete=False) as f:
            f.write(zero_caffemodel(weights))
            model = f.name
        try:
            dnn = dnn_net(path, model)
        finally:
            os.remove(model)
        if len(inputs) > 1:
            dnn.setInputsNames([n for n, _ in inputs])
        ids, _, outs = dnn.getLayersShapes([s for _, s in inputs])
        by_name = {}
        for lid, o in zip(ids.flatten().tolist() if hasattr(ids, 'flatten') else ids, outs):
            by_name[dnn.getLayerNames()[lid - 1] if lid > 0 else '_input'] = [[int(x) for x in np.array(s).flatten()] for s in o]
        recorded = []
        for lay in layers:
            if lay.type == 'Input':
                continue
            if lay.name not in by_name:
                raise RuntimeError(f'{path}: OpenCV has no layer {lay.name}')
            cv = by_name[lay.name]
            if cv != walked[lay.name]:
                raise RuntimeError(f'{path}: layer {lay.name} ({lay.type}): OpenCV says {cv}, the walk says {walked[lay.name]}')
            recorded.append([lay.name, lay.type, cv])
        # Caffe's net outputs: tops that no later layer consumes.
        available = []
        for lay in layers:
            for b in lay.bottoms:
                if b in available:
                    available.remove(b)
            for t in lay.tops:
                if t not in available:
                    available.append(t)
        last = {}
        for lay in layers:
            for i, t in enumerate(lay.tops):
                last[t] = by_name.get(lay.name, [None] * len(lay.tops))[i] if lay.type != 'Input' else dict(inputs)[t]
        entry['inputs'] = {n: s for n, s in inputs}
        entry['outputs'] = {t: last[t] for t in sorted(available)}
        entry['layers'] = recorded
        entries.append(entry)
    return entries


def to_json(obj, indent=0, key=None):
    """JSON with objects indented, one `layers` entry a line, other lists without objects on one line."""
    pad = '  ' * indent
    if isinstance(obj, dict):
        if not obj:
            return '{}'
        items = [f'{pad}  {json.dumps(k)}: {to_json(v, indent + 1, k)}' for k, v in obj.items()]
        return '{\n' + ',\n'.join(items) + '\n' + pad + '}'
    if isinstance(obj, list) and (key == 'layers' or has_dict(obj)):
        items = [f'{pad}  {to_json(v, indent + 1)}' for v in obj]
        return '[\n' + ',\n'.join(items) + '\n' + pad + ']'
    return json.dumps(obj, separators=(', ', ': '))


def has_dict(x):
    if isinstance(x, dict):
        return True
    return isinstance(x, list) and any(has_dict(v) for v in x)


def write_json(path, obj):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(to_json(obj) + '\n')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--corpus', default=os.path.join(os.path.dirname(REPO), 'shared', 'corpus'))
    args = ap.parse_args()
    corpus = os.path.abspath(args.corpus)
    os.makedirs(OUT, exist_ok=True)
    header = dict(
        oracle=f'OpenCV {cv2.__version__} dnn (cv2.dnn.readNetFromCaffe, DNN_BACKEND_OPENCV, CPU, fusion off), numpy {np.__version__}',
        command=COMMAND,
        corpus='../shared/corpus beside the repository',
    )
    manifest = dict(header, note=(
        'Per model: the corpus files, the layers cut from the prototxt before building (replaced by '
        'an input blob of the same name), the inputs fed, and the stored layer outputs (layer name, '
        f'top index, Caffe top name). Outputs over {MAX_STORED_ELEMENTS} elements are stored only '
        'when they are net outputs. All arrays little-endian float32, C order.'),
        models=[make_model(s, corpus) for s in models(corpus)])
    write_json(os.path.join(OUT, 'manifest.json'), manifest)
    shapes = dict(header, note=(
        'Tops of every layer at batch 1 (Input shapes from the file, batch set to 1), as '
        'OpenCV computes them with zero weights sized by the script; outputs are the blobs no '
        'layer consumes. Nets that need non-BVLC layer types or read training data are skipped.'),
        nets=deploy_shapes(corpus))
    write_json(os.path.join(OUT, 'deploy-shapes.json'), shapes)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f'wrote {OUT} ({total} bytes)', file=sys.stderr)


if __name__ == '__main__':
    main()
