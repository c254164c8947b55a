export declare function generateInferWat(options?: { shared?: boolean; relaxed?: boolean }): string;
export declare const PCONV_BLOCKING: Readonly<{ MR: number; NR: number; MC: number; KC: number; NC: number }>;
export declare const DIRECT_MAX_ROWS: number;
