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
* manifest.json: what each file is, and the command that made them.

Deterministic: running it again on the same corpus and OpenCV version rewrites the same bytes.
"""
import argparse
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
    }
    with open(os.path.join(OUT, 'manifest.json'), 'w') as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)
        fh.write('\n')


if __name__ == '__main__':
    main()
