export { MathError } from './errors.js';
export {
  gemm,
  gemmJs,
  gemv,
  setGemmKernel,
  activeGemmKernelName,
  customGemmKernelInstalled,
  restoreDefaultGemmKernel,
  GEMM_KERNEL_MIN_WORK,
  type GemmKernel,
} from './gemm.js';
export { axpy, axpby, scal, scale, dot, stridedDot, asum, sumsq, set, copy } from './blas.js';
export { add, sub, mul, div, addScalar, sqr, sqrt, powx, exp, log, abs, sign } from './elementwise.js';
export { im2col, col2im, im2colBatch, col2imBatch, im2colNd, col2imNd, convOutputSize } from './im2col.js';
