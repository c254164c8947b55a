export declare const INFER_GENERATED_PATH: string;
export declare function renderInferWasm(): Promise<string>;
