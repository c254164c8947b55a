# Independent MTCNN cascade in numpy, nets run by OpenCV dnn; follows detect_face.m (MTCNNv2).
# Usage: python3 mtcnn-oracle.py [MTCNN_DIR] (default: the corpus beside the checkout).
import os, sys, json, cv2, numpy as np
D = os.path.join(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../../shared/corpus/weights/mtcnn_kpzhang93'), '')
nets = [cv2.dnn.readNetFromCaffe(D + f'det{i}.prototxt', D + f'det{i}.caffemodel') for i in (1, 2, 3, 4)]

def run(net, x, names):
    net.setInput(x.astype(np.float32))
    outs = net.forward(names)
    return [np.array(o) for o in outs]

def nms(b, t, typ):
    if len(b) == 0: return []
    x1, y1, x2, y2, s = b[:, 0], b[:, 1], b[:, 2], b[:, 3], b[:, 4]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    I = np.argsort(s, kind='stable')
    pick = []
    while len(I):
        i = I[-1]; pick.append(i); R = I[:-1]
        w = np.maximum(0, np.minimum(x2[i], x2[R]) - np.maximum(x1[i], x1[R]) + 1)
        h = np.maximum(0, np.minimum(y2[i], y2[R]) - np.maximum(y1[i], y1[R]) + 1)
        inter = w * h
        o = inter / np.minimum(area[i], area[R]) if typ == 'Min' else inter / (area[i] + area[R] - inter)
        I = R[o <= t]
    return pick

def rerec(b):
    b = b.copy(); w = b[:, 2] - b[:, 0]; h = b[:, 3] - b[:, 1]; l = np.maximum(w, h)
    b[:, 0] += w * .5 - l * .5; b[:, 1] += h * .5 - l * .5; b[:, 2] = b[:, 0] + l; b[:, 3] = b[:, 1] + l
    return b

def bbreg(b, r):
    b = b.copy(); w = b[:, 2] - b[:, 0] + 1; h = b[:, 3] - b[:, 1] + 1
    b[:, 0] += r[:, 0] * w; b[:, 1] += r[:, 1] * h; b[:, 2] += r[:, 2] * w; b[:, 3] += r[:, 3] * h
    return b

def crop(img, b, size):
    H, W = img.shape[:2]
    x1, y1, x2, y2 = [int(v) for v in b[:4]]
    tmp = np.zeros((y2 - y1 + 1, x2 - x1 + 1, 3))
    for r in range(y2 - y1 + 1):
        sy = y1 - 1 + r
        if sy < 0 or sy >= H: continue
        for c in range(x2 - x1 + 1):
            sx = x1 - 1 + c
            if 0 <= sx < W: tmp[r, c] = img[sy, sx]
    return cv2.resize(tmp, (size, size), interpolation=cv2.INTER_LINEAR)

def prep(p):  # H x W x 3 -> 3 x W x H, normalised
    return ((p - 127.5) * 0.0078125).transpose(2, 1, 0)

def detect(path, minsize=20, th=(0.6, 0.7, 0.7), factor=0.709):
    img = cv2.imread(path)[:, :, ::-1].astype(np.float64)
    h, w = img.shape[:2]
    m = 12.0 / minsize; minl = min(h, w) * m; scales = []; k = 0
    while minl >= 12: scales.append(m * factor ** k); minl *= factor; k += 1
    total = []
    for s in scales:
        hs, ws = int(np.ceil(h * s)), int(np.ceil(w * s))
        im = cv2.resize(img, (ws, hs), interpolation=cv2.INTER_LINEAR)
        reg, prob = run(nets[0], prep(im)[None], ['conv4-2', 'prob1'])
        p = prob[0, 1]  # [A (x), B (y)]
        A, B = p.shape
        bx = []
        for b in range(B):
            for a in range(A):
                if p[a, b] >= th[0]:
                    bx.append([np.fix((2 * a + 1) / s), np.fix((2 * b + 1) / s), np.fix((2 * a + 12) / s), np.fix((2 * b + 12) / s), p[a, b], *reg[0, :, a, b]])
        bx = np.array(bx).reshape(-1, 9)
        bx = bx[nms(bx, 0.5, 'Union')]
        total += list(bx)
    tb = np.array(total).reshape(-1, 9)
    if len(tb) == 0: return []
    tb = tb[nms(tb, 0.7, 'Union')]
    bw = tb[:, 2] - tb[:, 0]; bh = tb[:, 3] - tb[:, 1]
    tb = np.stack([tb[:, 0] + tb[:, 5] * bw, tb[:, 1] + tb[:, 6] * bh, tb[:, 2] + tb[:, 7] * bw, tb[:, 3] + tb[:, 8] * bh, tb[:, 4]], 1)
    tb = rerec(tb); tb[:, :4] = np.fix(tb[:, :4])
    n1 = len(tb)
    x = np.stack([prep(crop(img, b, 24)) for b in tb])
    reg, prob = run(nets[1], x, ['conv5-2', 'prob1'])
    sc = prob[:, 1]; ok = np.where(sc > th[1])[0]
    tb = np.concatenate([tb[ok, :4], sc[ok, None]], 1); mv = reg[ok]
    pick = nms(tb, 0.7, 'Union'); tb = rerec(bbreg(tb[pick], mv[pick]))
    tb = np.fix(tb)
    n2 = len(tb)
    if n2 == 0: return []
    x = np.stack([prep(crop(img, b, 48)) for b in tb])
    reg, pts, prob = run(nets[2], x, ['conv6-2', 'conv6-3', 'prob1'])
    sc = prob[:, 1]; ok = np.where(sc > th[2])[0]
    pts = pts[ok]; tb = np.concatenate([tb[ok, :4], sc[ok, None]], 1); mv = reg[ok]
    bw = tb[:, 2] - tb[:, 0] + 1; bh = tb[:, 3] - tb[:, 1] + 1
    px = bw[:, None] * pts[:, :5] + tb[:, 0:1] - 1; py = bh[:, None] * pts[:, 5:] + tb[:, 1:2] - 1
    tb = bbreg(tb, mv); pick = nms(tb, 0.7, 'Min'); tb = tb[pick]; px = px[pick]; py = py[pick]
    n3 = len(tb)
    # L-Net
    if n3:
        pw = np.fix(0.25 * np.maximum(tb[:, 2] - tb[:, 0] + 1, tb[:, 3] - tb[:, 1] + 1)); pw[pw % 2 == 1] += 1
        x = np.zeros((n3, 15, 24, 24))
        for j in range(n3):
            for k in range(5):
                xx = np.fix(px[j, k] - 0.5 * pw[j]); yy = np.fix(py[j, k] - 0.5 * pw[j])
                x[j, 3 * k:3 * k + 3] = prep(crop(img, [xx, yy, xx + pw[j], yy + pw[j]], 24))
        outs = run(nets[3], x, [f'fc5_{k}' for k in range(1, 6)])
        for k in range(5):
            o = outs[k].copy()
            bad = np.abs(o[:, 0] - 0.5) > 0.35; o[bad] = 0.5
            bad = np.abs(o[:, 1] - 0.5) > 0.35; o[bad] = 0.5
            px[:, k] = px[:, k] - 0.5 * pw + o[:, 0] * pw; py[:, k] = py[:, k] - 0.5 * pw + o[:, 1] * pw
    return dict(stages=[n1, n2, n3], faces=[dict(box=[float(v) for v in tb[i, :4]], score=float(tb[i, 4]), landmarks=[[float(px[i, k]), float(py[i, k])] for k in range(5)]) for i in range(n3)])

print(json.dumps({f: detect(D + f + '.jpg') for f in ['test1', 'test2']}, indent=None))
