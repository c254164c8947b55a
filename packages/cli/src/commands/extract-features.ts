import { getBackend, logger } from '@caffe-ts/blob';
import { extractFeatures } from '@caffe-ts/io-leveldb';
import { Net } from '@caffe-ts/net';
import { copyTrainedLayersFromFile, readNetParameter } from '@caffe-ts/net/node';
import { Phase } from '@caffe-ts/proto';
import { enableHdf5, isHdf5Path } from '@caffe-ts/solver/node';
import { UsageError } from '../args.js';
import { userPath } from '../paths.js';
import { cliRegistry } from './common.js';
import type { Command } from './index.js';

const log = logger('extract_features.ts');

/**
 * Caffe's `extract_features`, with its positional arguments: the trained weights, a net whose data
 * layers read the inputs, the blobs to save, one database per blob, the number of forward passes,
 * the database engine, then optionally CPU or GPU and a device id.
 */
export const extractFeaturesCommand: Command = {
  summary: 'save blobs of a net run over its data layers as Datum databases (Caffe extract_features)',
  usage: 'WEIGHTS.caffemodel NET.prototxt blob1[,blob2,...] db1[,db2,...] NUM_MINI_BATCHES leveldb|lmdb [CPU|GPU] [DEVICE_ID]',
  async run({ flags, positional }) {
    flags.checkAllUsed();
    if (positional.length < 6 || positional.length > 8) {
      throw new UsageError(
        `expected WEIGHTS NET blob1[,blob2,...] db1[,db2,...] NUM_MINI_BATCHES DB_TYPE [CPU|GPU] [DEVICE_ID], got ${positional.length} argument(s)`,
      );
    }
    const [weights, model, blobList, dbList, batchesText, dbType, mode = 'CPU', deviceId] = positional as [string, string, string, string, string, string, string?, string?];
    if (!/^\d+$/.test(batchesText)) throw new UsageError(`NUM_MINI_BATCHES must be a non-negative integer, got '${batchesText}'`);
    const type = dbType.toLowerCase();
    if (type !== 'leveldb' && type !== 'lmdb') throw new UsageError(`Unknown db backend ${dbType} (expected leveldb or lmdb)`);
    if (mode !== 'CPU' && mode !== 'GPU') throw new UsageError(`expected CPU or GPU after the db type, got '${mode}'`);
    if (deviceId !== undefined && !/^\d+$/.test(deviceId)) throw new UsageError(`DEVICE_ID must be a non-negative integer, got '${deviceId}'`);
    const blobs = blobList.split(',');
    const dbs = dbList.split(',');
    // Caffe's message, before anything is opened.
    if (blobs.length !== dbs.length) throw new UsageError(`the number of blob names and dataset names must be equal (${blobs.length} blob(s), ${dbs.length} dataset(s))`);

    let backend;
    try {
      backend = await getBackend(mode === 'GPU' ? 'gpu' : 'cpu');
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    log.error(mode === 'GPU' ? `Using GPU (backend ${backend.name}, device ${deviceId ?? 0})` : 'Using CPU');
    const netFile = userPath(model);
    const net = await Net.create(readNetParameter(netFile), { phase: Phase.TEST, registry: cliRegistry(), backend, name: netFile });
    try {
      if (isHdf5Path(weights)) await enableHdf5(); // .caffemodel.h5 weights
      copyTrainedLayersFromFile(net, userPath(weights));
      await extractFeatures(net, blobs, dbs.map((d) => userPath(d)), Number(batchesText), { backend: type, netName: model });
    } finally {
      await net.close();
    }
    return 0;
  },
};
