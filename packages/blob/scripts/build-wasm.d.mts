export declare const WAT_PATH: string;
export declare const GENERATED_PATH: string;
export declare function renderGemmWasm(): Promise<{ wat: string; ts: string }>;
