import type { Flags } from '../args.js';
import type { CliIo } from '../cli.js';
import { computeImageMeanCommand } from './compute-image-mean.js';
import { convertAnnosetCommand } from './convert-annoset.js';
import { convertCifarCommand } from './convert-cifar.js';
import { convertImagesetCommand } from './convert-imageset.js';
import { convertMnistCommand } from './convert-mnist.js';
import { classifyCommand } from './classify.js';
import { forwardCommand } from './forward.js';
import { getImageSizeCommand } from './get-image-size.js';
import { detectCommand } from './detect.js';
import { detectFacesCommand } from './detect-faces.js';
import { detectWindowsCommand } from './detect-windows.js';
import { deviceQueryCommand } from './device-query.js';
import { drawNetCommand } from './draw-net.js';
import { extractFeaturesCommand } from './extract-features.js';
import { layerTypesCommand } from './layer-types.js';
import { parseLogCommand } from './parse-log.js';
import { plotLogCommand } from './plot-log.js';
import { summaryCommand } from './summary.js';
import { testCommand } from './test.js';
import { testNetCommand } from './test-net.js';
import { timeCommand } from './time.js';
import { trainCommand } from './train.js';
import { upgradeNetProtoBinaryCommand } from './upgrade-net-proto-binary.js';
import { upgradeNetProtoTextCommand } from './upgrade-net-proto-text.js';
import { upgradeSolverProtoTextCommand } from './upgrade-solver-proto-text.js';
import { visualizeCommand } from './visualize.js';

export interface CommandContext {
  flags: Flags;
  positional: string[];
  io: CliIo;
}

export interface Command {
  summary: string;
  usage: string;
  run(ctx: CommandContext): Promise<number | void>;
}

export const COMMANDS: Record<string, Command> = {
  train: trainCommand,
  test: testCommand,
  time: timeCommand,
  forward: forwardCommand,
  classify: classifyCommand,
  device_query: deviceQueryCommand,
  detect: detectCommand,
  test_net: testNetCommand,
  detect_faces: detectFacesCommand,
  detect_windows: detectWindowsCommand,
  convert_mnist: convertMnistCommand,
  convert_imageset: convertImagesetCommand,
  convert_annoset: convertAnnosetCommand,
  get_image_size: getImageSizeCommand,
  compute_image_mean: computeImageMeanCommand,
  extract_features: extractFeaturesCommand,
  convert_cifar: convertCifarCommand,
  layer_types: layerTypesCommand,
  upgrade_net_proto_text: upgradeNetProtoTextCommand,
  upgrade_net_proto_binary: upgradeNetProtoBinaryCommand,
  upgrade_solver_proto_text: upgradeSolverProtoTextCommand,
  draw_net: drawNetCommand,
  parse_log: parseLogCommand,
  summary: summaryCommand,
  plot_log: plotLogCommand,
  visualize: visualizeCommand,
};
