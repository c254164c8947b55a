import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caffe, tempDir } from './helpers.js';

// The mistakes a new user makes first: each must end with status 1 and one clear line.
describe('caffe CLI user errors', () => {
  const dir = tempDir('caffe-ts-cli-errors-');
  const file = (name: string, text: string) => {
    const path = join(dir.path, name);
    writeFileSync(path, text);
    return path;
  };
  const input = 'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }\n';

  beforeAll(() => {
    file('unknown-type.prototxt', input + 'layer { name: "fc" type: "InnerProdukt" bottom: "data" top: "fc" }\n');
    file('unknown-field.prototxt', input + 'layer {\n  name: "conv"\n  type: "Convolution"\n  bottom: "data"\n  top: "conv"\n  convolution_param { num_output: 4 kernal_size: 3 }\n}\n');
    file(
      'bad-shape.prototxt',
      input +
        'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 4 kernel_size: 3 } }\n' +
        'layer { name: "sum" type: "Eltwise" bottom: "data" bottom: "conv" top: "sum" }\n',
    );
    file('bad-enum.prototxt', input + 'layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" pooling_param { pool: MAXIMUM kernel_size: 2 } }\n');
    file('unknown-bottom.prototxt', input + 'layer { name: "relu" type: "ReLU" bottom: "dat" top: "relu" }\n');
  });
  afterAll(() => dir.remove());

  const expectOneLineError = (r: { code: number; stderr: string }, pattern: RegExp) => {
    expect(r.code).toBe(1);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines[0]).toMatch(pattern);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace without --verbose
  };

  it('unknown layer type names the type, the known types and the layer', async () => {
    const r = await caffe(['time', '--model', 'unknown-type.prototxt', '--iterations', '1'], dir.path);
    expectOneLineError(r, /^caffe time: Unknown layer type: InnerProdukt \(known types: .*InnerProduct.*\) in layer 'fc'/);
  });

  it('unknown field names file:line:column and suggests the right one', async () => {
    const r = await caffe(['time', '--model', 'unknown-field.prototxt'], dir.path);
    expectOneLineError(r, /unknown-field\.prototxt:7:37: unknown field 'kernal_size' in caffe\.ConvolutionParameter .*did you mean 'kernel_size'\?/);
  });

  it('bad enum value lists the allowed names', async () => {
    const r = await caffe(['time', '--model', 'bad-enum.prototxt'], dir.path);
    expectOneLineError(r, /bad-enum\.prototxt:2:\d+: .*'MAXIMUM'.*caffe\.PoolingParameter\.PoolMethod.*MAX, AVE, STOCHASTIC/);
  });

  it('bad shape names the layer and both shapes', async () => {
    const r = await caffe(['time', '--model', 'bad-shape.prototxt'], dir.path);
    expectOneLineError(r, /Eltwise layer 'sum'.*2 3 8 8.*2 4 6 6|Eltwise layer 'sum'.*2 4 6 6.*2 3 8 8/);
  });

  it('unknown bottom blob names the blob and the layer', async () => {
    const r = await caffe(['time', '--model', 'unknown-bottom.prototxt'], dir.path);
    expectOneLineError(r, /Unknown bottom blob 'dat' \(layer 'relu', bottom index 0\)/);
  });

  it('missing file names the path', async () => {
    const r = await caffe(['train', '--solver', 'no-such-solver.prototxt'], dir.path);
    expectOneLineError(r, /no-such-solver\.prototxt/);
    expect(r.stderr).toMatch(/not found|does not exist|no such file/i);
  });

  it('usage mistakes: missing flag, conflicting flags, unknown flag, unknown command', async () => {
    expectOneLineError(await caffe(['train'], dir.path), /Need a solver definition to train\./);
    expectOneLineError(
      await caffe(['train', '--solver', 's', '--weights', 'w', '--snapshot', 'x'], dir.path),
      /Give a snapshot to resume training or weights to finetune but not both \(got --snapshot .+ and --weights .+\)\./,
    );
    expectOneLineError(await caffe(['test', '--model', 'm', '--weights', 'w', '--iteratons', '3'], dir.path), /unknown flag for 'test': --iteratons/);
    const r = await caffe(['trian'], dir.path);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unknown command 'trian'/);
  });

  it('help: caffe --help and caffe help succeed, no command is a usage error; every command name stands apart from its summary', async () => {
    for (const args of [['--help'], ['help']]) {
      const r = await caffe(args, dir.path);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^usage: caffe <command> <args>/);
    }
    const none = await caffe([], dir.path);
    expect(none.code).toBe(1);
    const lines = none.stdout.split('\n').filter((l) => /^  \w/.test(l));
    expect(lines.length).toBeGreaterThan(20);
    // The longest names (upgrade_net_proto_binary, …) too: two spaces at least before the summary.
    for (const line of lines) expect(line).toMatch(/^  \w+ {2,}\S/);
    // … and the summaries start in one column.
    expect(new Set(lines.map((l) => /^ {2}\w+ +/.exec(l)![0].length)).size).toBe(1);
  });

  it('accepts Caffe flag spellings', async () => {
    const r = await caffe(['time', '-model=unknown-type.prototxt', '-iterations=1'], dir.path);
    expect(r.stderr).toMatch(/Unknown layer type: InnerProdukt/);
  });
});
