export interface GemmBlocking {
  MR: number;
  NR: number;
  KU: number;
  MC: number;
  KC: number;
  NC: number;
}
export declare const GEMM_BLOCKING: Readonly<GemmBlocking>;
export declare function generateGemmWat(options?: { relaxed?: boolean; shared?: boolean; blocking?: Partial<GemmBlocking> }): string;
