#!/usr/bin/python3
"""Oracle fixtures for @caffe-ts/layers-contrib, computed by OpenCV's dnn module (which implements
the SSD fork's PriorBox, Permute, Normalize and DetectionOutput on its own).

    /usr/bin/python3 scripts/oracle/make-contrib-fixtures.py [--corpus DIR]

(run from the repository root; needs Debian's python3-opencv and python3-numpy; the tests read
what it writes and never need OpenCV.)

Writes under tests/fixtures/contrib/:

* yuface/input.png: the MTCNN test image test1.jpg resized with cv2.resize (INTER_LINEAR) to
  160x120, the input of the check (lossless, so both sides feed the same pixels).
* yuface/<blob>.npy: outputs of yufacedetectnet-open-v2 (corpus prototxt and caffemodel) for that
  image minus the mean (104, 117, 123), as little-endian float32 .npy, C order: the prior boxes,
  a Normalize output, a Permute output, the concatenated location and confidence predictions and
  the DetectionOutput rows.
* deploy/<net>.json and deploy/<net>-priorbox.npy: for the deploy nets of the corpus that use
  the SSD fork's layers (MobileNet-SSD x2, OpenCV's face detector, yufacedetectnet) the shape of
  every layer's tops at batch 1 as OpenCV computes them (getLayersShapes; DetectionOutput, whose
  row count depends on the data, left out), and every 7th value of the concatenated prior boxes
  (data-independent). OpenCV needs weights to build these nets: the script sizes zero weights
  with its own shape walk (make-fixtures.py's rules plus the fork layers'), which OpenCV checks.
* manifest.json: what each file is, and the command that made them.

Deterministic: running it again on the same corpus and OpenCV version rewrites the same bytes.
"""
import argparse
import importlib.util
import json
import os
import tempfile

import cv2
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, 'tests', 'fixtures', 'contrib')
COMMAND = '/usr/bin/python3 scripts/oracle/make-contrib-fixtures.py'
MEAN = (104.0, 117.0, 123.0)
SIZE = (160, 120)  # width, height
BLOBS = [
    'conv3_3_norm_mbox_priorbox',
    'mbox_priorbox',
    'conv5_3_norm',
    'conv3_3_norm_mbox_loc_perm',
    'mbox_loc',
    'mbox_conf_flatten',
    'detection_out',
]


def load_make_fixtures():
    spec = importlib.util.spec_from_file_location('make_fixtures', os.path.join(os.path.dirname(__file__), 'make-fixtures.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# Deploy nets with fork layers: corpus path, lines OpenCV's schema cannot read (fork or
# OpenCV-only fields nothing at inference needs).
DEPLOY = [
    ('mobilenet_ssd_deploy', 'nets/mobilenet_ssd/MobileNetSSD_deploy.prototxt'),
    ('mobilenet_ssd_bn_deploy', 'nets/mobilenet_ssd/deploy.prototxt'),
    ('opencv_face_detector', 'nets/opencv_face_detector/deploy.prototxt'),
    ('yufacedetectnet', 'weights/yufacedetectnet_open_v2/yufacedetectnet-open-v2.prototxt'),
]
OPENCV_UNREADABLE = ('visualize:', 'visualize_threshold:')
PRIOR_STRIDE = 7


def fork_walk(mf, layers, inputs):
    """Top shapes and learnable blob shapes, with the SSD fork's layers added to make-fixtures'
    BVLC rules (an independent count of the priors: the tests compare it with caffe-ts)."""
    shapes = dict(inputs)
    tops, weights = {}, {}
    for lay in layers:
        t = lay.type
        b = [shapes[x] for x in lay.bottoms]
        if t == 'PriorBox':
            p = lay.msg.get('prior_box_param', mf.Msg())
            ars = [1.0]
            for ar in mf.rep(p, 'aspect_ratio', []):
                if all(abs(float(ar) - r) >= 1e-6 for r in ars):
                    ars.append(float(ar))
                    if p.get('flip', 'true') not in ('false', False):
                        ars.append(1.0 / float(ar))
            mins = mf.rep(p, 'min_size', [])
            per = len(ars) * len(mins) + len(mf.rep(p, 'max_size', []))
            out = [[1, 2, b[0][2] * b[0][3] * per * 4]]
        elif t == 'Permute':
            order = [int(o) for o in mf.rep(lay.msg.get('permute_param', mf.Msg()), 'order', [])]
            order += [i for i in range(len(b[0])) if i not in order]
            out = [[b[0][o] for o in order]]
        elif t == 'Normalize':
            p = lay.msg.get('norm_param', mf.Msg())
            shared = p.get('channel_shared', 'true') not in ('false', False)
            weights[lay.name] = [[1] if shared else [b[0][1]]]
            out = [b[0]]
        elif t == 'Reshape':
            dims = [int(d) for d in mf.rep(lay.msg.get('reshape_param').get('shape'), 'dim', [])]
            o = [b[0][i] if d == 0 else d for i, d in enumerate(dims)]
            if -1 in o:
                known = int(np.prod([d for d in o if d != -1]))
                o[o.index(-1)] = int(np.prod(b[0])) // known
            out = [o]
        elif t == 'DetectionOutput':
            out = [[1, 1, 1, 7]]
        else:
            t_, w_ = mf.walk_shapes([lay], shapes)
            out = t_[lay.name]
            weights.update(w_)
        tops[lay.name] = out
        for name, sh in zip(lay.tops, out):
            shapes[name] = sh
    return tops, weights


def deploy_fixtures(corpus):
    mf = load_make_fixtures()
    out_dir = os.path.join(OUT, 'deploy')
    os.makedirs(out_dir, exist_ok=True)
    entries = []
    for key, path in DEPLOY:
        with open(os.path.join(corpus, path)) as fh:
            text = ''.join(l for l in fh if not l.strip().startswith(OPENCV_UNREADABLE))
        msg = mf.parse_text(text)
        layers = mf.net_layers(msg)
        inputs = mf.net_inputs(msg, layers)
        tops, weights = fork_walk(mf, layers, dict(inputs))
        with tempfile.TemporaryDirectory() as tmp:
            proto_copy = os.path.join(tmp, 'net.prototxt')
            model = os.path.join(tmp, 'zero.caffemodel')
            with open(proto_copy, 'w') as fh:
                fh.write(text)
            with open(model, 'wb') as fh:
                fh.write(mf.zero_caffemodel(weights))
            net = mf.dnn_net(proto_copy, model)
            (in_name, in_shape), = inputs
            ids, _, outs = net.getLayersShapes([list(in_shape)])
            names = net.getLayerNames()
            shapes = {}
            for lid, o in zip(ids, outs):
                name = names[lid - 1] if lid >= 1 else None
                lay = next((l for l in layers if l.name == name), None)
                if lay is None or lay.type == 'DetectionOutput':
                    continue
                shapes[name] = [[int(d) for d in np.array(x).flatten()] for x in o]
                if shapes[name] != tops[name]:
                    raise SystemExit(f'{path}: {name}: OpenCV says {shapes[name]}, the walk {tops[name]}')
            net.setInput(np.zeros(in_shape, np.float32))
            prior = net.forward('mbox_priorbox')
        pfile = f'deploy/{key}-priorbox.npy'
        np.save(os.path.join(OUT, pfile), np.ascontiguousarray(prior.reshape(-1)[::PRIOR_STRIDE], dtype='<f4'), allow_pickle=False)
        sfile = f'deploy/{key}.json'
        with open(os.path.join(OUT, sfile), 'w') as fh:
            json.dump(shapes, fh, sort_keys=True)
            fh.write('\n')
        entries.append({'prototxt': path, 'input': {in_name: list(in_shape)}, 'shapes': sfile, 'priorbox': pfile,
                        'priorbox_note': 'mbox_priorbox %s, every %dth value' % (list(prior.shape), PRIOR_STRIDE),
                        'dropped_lines': list(OPENCV_UNREADABLE)})
    return entries


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--corpus', default=os.path.join(os.path.dirname(REPO), 'shared', 'corpus'))
    args = ap.parse_args()
    folder = os.path.join(args.corpus, 'weights', 'yufacedetectnet_open_v2')
    proto = os.path.join(folder, 'yufacedetectnet-open-v2.prototxt')
    model = os.path.join(folder, 'yufacedetectnet-open-v2.caffemodel')
    out = os.path.join(OUT, 'yuface')
    os.makedirs(out, exist_ok=True)

    img = cv2.imread(os.path.join(args.corpus, 'weights', 'mtcnn_kpzhang93', 'test1.jpg'), cv2.IMREAD_COLOR)
    small = cv2.resize(img, SIZE, interpolation=cv2.INTER_LINEAR)
    cv2.imwrite(os.path.join(out, 'input.png'), small, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    blob = (small.astype(np.float32) - np.array(MEAN, np.float32)).transpose(2, 0, 1)[None]

    # OpenCV's schema lacks the fork's DetectionOutputParameter.visualize fields (unused at
    # inference): read a copy without them.
    with open(proto) as fh:
        text = ''.join(l for l in fh if not l.strip().startswith(('visualize:', 'visualize_threshold:')))
    with tempfile.NamedTemporaryFile('w', suffix='.prototxt', delete=False) as fh:
        fh.write(text)
        proto_copy = fh.name
    try:
        net = cv2.dnn.readNetFromCaffe(proto_copy, model)
    finally:
        os.unlink(proto_copy)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    # Keep each layer's own output (no ReLU/Scale folding into the layer before).
    net.enableFusion(False)
    net.setInput(np.ascontiguousarray(blob))
    values = net.forward(BLOBS)
    files = []
    for name, v in zip(BLOBS, values):
        f = name + '.npy'
        np.save(os.path.join(out, f), np.ascontiguousarray(v, dtype='<f4'), allow_pickle=False)
        files.append({'blob': name, 'file': 'yuface/' + f, 'shape': list(v.shape)})
    manifest = {
        'oracle': 'OpenCV %s dnn (readNetFromCaffe, DNN_BACKEND_OPENCV, CPU, fusion off)' % cv2.__version__,
        'command': COMMAND,
        'model': {
            'prototxt': 'weights/yufacedetectnet_open_v2/yufacedetectnet-open-v2.prototxt',
            'caffemodel': 'weights/yufacedetectnet_open_v2/yufacedetectnet-open-v2.caffemodel',
            'input': 'yuface/input.png',
            'input_note': 'test1.jpg resized to %dx%d (cv2.INTER_LINEAR), BGR minus %s, NCHW' % (SIZE[0], SIZE[1], list(MEAN)),
            'blobs': files,
        },
        'deploy': deploy_fixtures(args.corpus),
    }
    with open(os.path.join(OUT, 'manifest.json'), 'w') as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)
        fh.write('\n')


if __name__ == '__main__':
    main()
