import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CaffeError, CaffeFileError, createMessage, ProtoBinaryError, ProtoTextError, type BlobProto, type NetParameter } from './index.js';
import { readBinaryProto, readTextProto, writeBinaryProto, writeFileAtomic, writeTextProto } from './node.js';

const dir = mkdtempSync(join(tmpdir(), 'caffe-ts-proto-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('@caffe-ts/proto/node', () => {
  it('writes and reads text protos', async () => {
    const p = join(dir, 'net.prototxt');
    const net = createMessage<NetParameter>('NetParameter', { name: 'n', layer: [{ name: 'r', type: 'ReLU' }] });
    await writeTextProto('NetParameter', p, net);
    expect(readFileSync(p, 'utf8')).toBe('name: "n"\nlayer {\n  name: "r"\n  type: "ReLU"\n}\n');
    expect(await readTextProto<NetParameter>('NetParameter', p)).toEqual(net);
  });

  it('writes and reads binary protos atomically, leaving no temp files', async () => {
    const p = join(dir, 'mean.binaryproto');
    const b = createMessage<BlobProto>('BlobProto', { shape: { dim: [2] }, data: new Float32Array([1, 2]) });
    await writeBinaryProto('BlobProto', p, b);
    await writeBinaryProto('BlobProto', p, b); // overwrite
    expect(await readBinaryProto<BlobProto>('BlobProto', p)).toEqual(b);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('missing files give CaffeFileError naming the path', async () => {
    const p = join(dir, 'nope.caffemodel');
    const err = await readBinaryProto('NetParameter', p).catch((e: unknown) => e);
    expect(CaffeFileError.isInstance(err)).toBe(true);
    expect(CaffeError.isInstance(err)).toBe(true);
    expect((err as CaffeFileError).message).toBe(`cannot read '${p}': no such file`);
    expect((err as CaffeFileError).path).toBe(p);
    expect((err as CaffeFileError).code).toBe('ENOENT');
    await expect(readTextProto('NetParameter', p)).rejects.toThrow(CaffeFileError);
    const w = join(dir, 'no-such-dir', 'x.prototxt');
    await expect(writeFileAtomic(w, 'x')).rejects.toThrow(`cannot write '${w}': its folder does not exist`);
  });

  it('parse errors name the file', async () => {
    const p = join(dir, 'bad.prototxt');
    writeFileSync(p, 'name: "x"\nlayer { nmae: "y" }\n');
    const err = await readTextProto('NetParameter', p).catch((e: unknown) => e);
    expect(ProtoTextError.isInstance(err)).toBe(true);
    expect((err as ProtoTextError).message).toBe(
      `${p}:2:9: unknown field 'nmae' in caffe.LayerParameter (at layer[0]); did you mean 'name'?`,
    );
    const q = join(dir, 'bad.caffemodel');
    writeFileSync(q, Buffer.from([0x0a, 0x05, 0x61]));
    const berr = await readBinaryProto('NetParameter', q).catch((e: unknown) => e);
    expect(ProtoBinaryError.isInstance(berr)).toBe(true);
    expect((berr as ProtoBinaryError).file).toBe(q);
  });
});

describe('writeFileAtomic on a full disk', () => {
  it('fails with a typed error naming the file and leaves the previous file and no temp file', async () => {
    const { mkdtempSync, readdirSync, readFileSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { writeFileAtomic } = await import('./node.js');
    const { CaffeFileError } = await import('./errors.js');
    const dir = mkdtempSync(join(tmpdir(), 'caffe-ts-enospc-'));
    const target = join(dir, 'snap_iter_10.caffemodel');
    writeFileSync(target, 'previous');
    process.env['CAFFE_TS_FAULT_ENOSPC'] = 'snap_iter_';
    try {
      const e = await writeFileAtomic(target, new Uint8Array(1000)).catch((x: unknown) => x);
      expect(CaffeFileError.isInstance(e)).toBe(true);
      expect((e as Error).message).toBe(
        `cannot write '${target}': no space left on device (ENOSPC: no space left on device, write (simulated by CAFFE_TS_FAULT_ENOSPC))`,
      );
      expect((e as { code?: string }).code).toBe('ENOSPC');
      expect(readFileSync(target, 'utf8')).toBe('previous');
      expect(readdirSync(dir)).toEqual(['snap_iter_10.caffemodel']);
    } finally {
      delete process.env['CAFFE_TS_FAULT_ENOSPC'];
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
