/**
 * pycaffe's `caffe.Net(prototxt, weights, phase)` for Node: build a net from a .prototxt file,
 * awaiting data layers' priming, and copy trained weights in when a .caffemodel is given.
 */
import type { Phase } from '@caffe-ts/proto';
import type { Net, NetOptions } from './net.js';
import { copyTrainedLayersFromFile, createNetFromFile } from './node.js';

export interface NetFromFilesOptions extends NetOptions {
  /** A .caffemodel (or .caffemodel.h5 with the HDF5 loader set) copied in by layer name. */
  weights?: string;
  phase?: Phase;
  level?: number;
  stages?: string[];
}

/** Build a net from `prototxt` and load `weights` into it (pycaffe's `caffe.Net(...)`). */
export async function netFromFiles(prototxt: string, options: NetFromFilesOptions = {}): Promise<Net> {
  const { weights, ...netOptions } = options;
  const net = await createNetFromFile(prototxt, netOptions);
  if (weights !== undefined) copyTrainedLayersFromFile(net, weights);
  return net;
}
