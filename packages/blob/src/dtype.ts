/** Element types a Blob can hold. float64 exists for gradient checks and oracles. */
export type DType = 'float32' | 'float64';

/** Host storage for one blob's data or diff. */
export type FloatArray = Float32Array | Float64Array;

export function allocArray(dtype: DType, length: number): FloatArray {
  return dtype === 'float64' ? new Float64Array(length) : new Float32Array(length);
}

export function dtypeOf(array: FloatArray): DType {
  return array instanceof Float64Array ? 'float64' : 'float32';
}

export const BYTES_PER_ELEMENT: Record<DType, number> = { float32: 4, float64: 8 };
