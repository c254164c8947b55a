import v8 from 'node:v8';
v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
const { initThreads, setNumThreads, setHostAllocator, Rng } = await import('@caffe-ts/blob');
const { defaultLayerRegistry } = await import('@caffe-ts/layers');
await import('@caffe-ts/layers/register');
const { Net } = await import('@caffe-ts/net');
const { parseNetParameter, Phase } = await import('@caffe-ts/proto');
setHostAllocator('wasm');
const arg = (k, d) => { const i = process.argv.indexOf('--' + k); return i > 0 ? process.argv[i + 1] : d; };
const [N, C, H, O, KS] = arg('geo', '64,1,28,20,5').split(',').map(Number);
const text = `name: "c"
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: ${N} dim: ${C} dim: ${H} dim: ${H} } } }
layer { name: "conv" type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: ${O} kernel_size: ${KS} weight_filler { type: "xavier" } } }
`;
const net = await Net.create(parseNetParameter(text), { phase: Phase.TRAIN, registry: defaultLayerRegistry(), log: false });
const x = net.blobs.get('x').mutableCpuData(); const r = new Rng(1); for (let i = 0; i < x.length; i++) x[i] = r.uniform();
await initThreads(2);
const res = { 1: [], 2: [] };
for (let it = 0; it < Number(arg('reps', '200')); it++) for (const T of [1, 2]) {
  setNumThreads(T);
  const t0 = performance.now(); net.forwardFromTo(1, 1); const dt = performance.now() - t0;
  if (it >= 5) res[T].push(dt);
}
const med = (a) => { const s = [...a].sort((p, q) => p - q); return s[s.length >> 1]; };
for (const T of [1, 2]) console.log(`T${T} median ${med(res[T]).toFixed(3)} min ${Math.min(...res[T]).toFixed(3)}`);
process.exit(0);
