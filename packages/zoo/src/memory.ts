import { allocArray, allocKernelShared, BYTES_PER_ELEMENT, type SyncedMemory } from '@caffe-ts/blob';
import type { Net } from '@caffe-ts/net';
import { CaffeError } from '@caffe-ts/proto';

/** Layer types whose tops share memory with something outside the net's blobs (params, internal buffers). */
const PINNED_TOP_TYPES = new Set(['Parameter', 'SoftmaxWithLoss', 'InfogainLoss']);

export interface ActivationPlan {
  /** Bytes of blob data before: every distinct data buffer of the net's blobs. */
  bytesBefore: number;
  /** Bytes after: pinned buffers (inputs, outputs, kept blobs) plus the shared slots. */
  bytesAfter: number;
  /** Shared buffers the pooled activations live in. */
  slots: number;
  /** Distinct data buffers that now live in a shared slot. */
  pooled: number;
  /** Blob names kept in buffers of their own (inputs, outputs, `keep`). */
  pinned: string[];
}

export interface ReuseOptions {
  /** Blobs to keep readable after forward, besides the net's inputs and outputs. */
  keep?: readonly string[];
}

/**
 * Let an inference-only net's activations share storage: a blob whose last reader has run hands
 * its buffer to blobs produced later. Blob lifetimes come from the layer order (first producer
 * to last consumer; in-place chains and blobs that share data — Split, Flatten, Reshape, one-input
 * Concat — count as one buffer); buffers are packed into slots greedily, by first use.
 *
 * Afterwards only the net's inputs, outputs and the `keep` blobs hold meaningful data once
 * `forward()` returns, and `backward()` throws (the activations it would need are gone). A later
 * reshape to larger inputs gives the grown blobs fresh buffers (correct, just not shared); call
 * this again after such a reshape to re-plan.
 */
export function reuseActivations(net: Net, options: ReuseOptions = {}): ActivationPlan {
  const bytes = BYTES_PER_ELEMENT[net.dtype];
  const keep = new Set<string>([...net.inputBlobNames, ...net.outputBlobNames, ...(options.keep ?? [])]);
  for (const name of options.keep ?? []) if (!net.hasBlob(name)) throw new CaffeError(`reuseActivations: net '${net.name}' has no blob '${name}' to keep`);

  // Buffers and the blobs that share them.
  const paramMems = new Set<SyncedMemory>(net.layers.flatMap((l) => l.blobs.map((b) => b.data)));
  interface Group { mem: SyncedMemory; first: number; last: number; pinned: boolean; names: Set<string> }
  const groups = new Map<SyncedMemory, Group>();
  const groupOf = (blobId: number): Group => {
    const mem = net.blobList[blobId]!.data;
    let g = groups.get(mem);
    if (!g) groups.set(mem, (g = { mem, first: Infinity, last: -1, pinned: paramMems.has(mem), names: new Set() }));
    g.names.add(net.blobNames[blobId]!);
    if (keep.has(net.blobNames[blobId]!)) g.pinned = true;
    return g;
  };
  // Forward runs fused chains as one pass (inference-fusion.ts): a chain reads its inputs while
  // it writes its outputs, and a Concat group's convolutions write the Concat's top before the
  // Concat's turn. So a blob a chain touches counts as live over the whole chain.
  const L = net.layers.length;
  const lo = Array.from({ length: L }, (_, i) => i);
  const hi = Array.from({ length: L }, (_, i) => i);
  if (net.fuseInference) {
    for (const chain of net.fusedChains().values()) {
      for (let i = chain.start; i <= chain.end; i++) {
        lo[i] = Math.min(lo[i]!, chain.start);
        hi[i] = Math.max(hi[i]!, chain.end);
      }
    }
  }
  net.layers.forEach((layer, i) => {
    for (const id of [...net.topIdVecs[i]!, ...net.bottomIdVecs[i]!]) {
      const g = groupOf(id);
      g.first = Math.min(g.first, lo[i]!);
      g.last = Math.max(g.last, hi[i]!);
    }
    for (const id of net.topIdVecs[i]!) if (PINNED_TOP_TYPES.has(layer.type)) groupOf(id).pinned = true;
  });

  let bytesBefore = 0;
  let bytesAfter = 0;
  const pinned: string[] = [];
  const pool: Group[] = [];
  for (const g of groups.values()) {
    bytesBefore += g.mem.capacity * bytes;
    if (g.pinned || g.mem.capacity === 0) {
      bytesAfter += g.mem.capacity * bytes;
      if (g.pinned) pinned.push(...g.names);
    } else pool.push(g);
  }

  // Greedy packing by first use: reuse a free slot (the smallest that fits, else the largest,
  // grown), or open a new one. A slot is free for a group once its last user ran before the
  // group's first producer.
  pool.sort((a, b) => a.first - b.first || b.mem.capacity - a.mem.capacity);
  interface Slot { size: number; busyUntil: number; members: Group[] }
  const slots: Slot[] = [];
  for (const g of pool) {
    const free = slots.filter((s) => s.busyUntil < g.first);
    const fitting = free.filter((s) => s.size >= g.mem.capacity).sort((a, b) => a.size - b.size);
    let slot = fitting[0] ?? free.sort((a, b) => b.size - a.size)[0];
    if (!slot) slots.push((slot = { size: 0, busyUntil: -1, members: [] }));
    slot.size = Math.max(slot.size, g.mem.capacity);
    slot.busyUntil = g.last;
    slot.members.push(g);
  }
  const releases: (() => void)[] = [];
  for (const s of slots) {
    // Float32 slots in the kernels' memory where blobs live there (the 'wasm' host allocator):
    // in a plain array every kernel would copy its operands in and out (MobileNet v2 ran 19 %
    // slower on two threads, GoogLeNet 23 %).
    const shared = net.dtype === 'float32' ? allocKernelShared(s.size) : null;
    if (shared) releases.push(shared.release);
    const storage = shared?.array ?? allocArray(net.dtype, s.size);
    for (const g of s.members) {
      const view = storage.subarray(0, g.mem.capacity);
      // The block goes back once every member's view is collected, not when `storage` is.
      shared?.track(view);
      g.mem.setCpuData(view);
    }
    bytesAfter += s.size * bytes;
  }

  const refuse = (): never => {
    throw new CaffeError(`net '${net.name}' shares activation memory (reuseActivations): it runs forward only`);
  };
  net.backwardFromTo = refuse;
  net.backward = refuse;
  // The slots go back with the net's own memory (the collector would free them only late).
  const dispose = net.dispose.bind(net);
  net.dispose = () => {
    if (net.isDisposed) return;
    dispose();
    for (const release of releases) release();
  };
  return { bytesBefore, bytesAfter, slots: slots.length, pooled: pool.length, pinned: pinned.sort() };
}
