import { resolve as resolvePath } from 'node:path';
import { logger, type Blob } from '@caffe-ts/blob';
import { Layer, type BlobCounts, type LayerContext, type LayerDef } from '@caffe-ts/layers';
import type { LayerParameter } from '@caffe-ts/proto';
import { hdf5Ready, isHdf5Ready, writeHdf5DatasetsSync } from './hdf5.js';

const log = logger('hdf5_output_layer.ts');

/** Caffe's legacy 4-axis view of a blob (num, channels, height, width; missing axes are 1). */
function legacyShape(b: Blob, fail: (m: string) => never): number[] {
  if (b.shape.length > 4) fail(`cannot save a blob of ${b.shape.length} axes (${b.shapeString()}); Caffe's HDF5Output takes at most 4`);
  return [0, 1, 2, 3].map((i) => b.shape[i] ?? 1);
}

/**
 * Caffe's HDF5Output layer: each forward saves bottom[0] as the dataset `data` and bottom[1] as
 * `label` (both as num × channels × height × width, float32 or float64 as the net's dtype) in
 * `hdf5_output_param.file_name`. The file is created (emptied) at set-up, as Caffe's H5Fcreate
 * with H5F_ACC_TRUNC does; each forward then rewrites it whole (Caffe's second forward would fail
 * on the existing datasets). No tops, no backward.
 */
export class HDF5OutputLayer extends Layer {
  readonly type: string = 'HDF5Output';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 2, exactNumTopBlobs: 0 };

  private fileName = '';

  constructor(param: LayerParameter, context: LayerContext = {}) {
    super(param, context);
  }

  /** The file written (resolved against the working directory). */
  get file(): string {
    return this.fileName;
  }

  override layerSetUp(_bottom: Blob[], _top: Blob[]): void {
    const p = this.param.hdf5_output_param;
    if (!p || !p.file_name) this.fail('hdf5_output_param.file_name is required');
    if (!isHdf5Ready()) this.fail('the HDF5 library is not loaded; build the net with await Net.create(...), or await hdf5Ready() first');
    this.fileName = resolvePath(p.file_name);
    try {
      writeHdf5DatasetsSync(this.fileName, {});
    } catch (e) {
      this.fail(`Failed to open HDF5 file ${p.file_name}: ${(e as Error).message}`);
    }
  }

  override reshape(_bottom: Blob[], _top: Blob[]): void {}

  protected forwardCpu(bottom: Blob[], _top: Blob[]): void {
    const [data, label] = bottom as [Blob, Blob];
    const fail = (m: string): never => this.fail(m);
    const dataShape = legacyShape(data, fail);
    const labelShape = legacyShape(label, fail);
    if (dataShape[0] !== labelShape[0]) this.fail(`data blob and label blob must have the same batch size (${dataShape[0]} vs ${labelShape[0]})`);
    log.info(`Saving HDF5 file ${this.param.hdf5_output_param!.file_name}`);
    writeHdf5DatasetsSync(this.fileName, {
      data: { shape: dataShape, data: data.cpuData().slice() },
      label: { shape: labelShape, data: label.cpuData().slice() },
    });
    log.info(`Successfully saved ${dataShape[0]} rows`);
  }

  protected override backwardCpu(): void {}
}

export const hdf5OutputLayerDef: LayerDef = {
  type: 'HDF5Output',
  create: (param, context) => new HDF5OutputLayer(param, context),
  prime: async () => {
    await hdf5Ready();
  },
};
