export declare const UPDATE_GENERATED_PATH: string;
export declare function renderUpdateWasm(): Promise<string>;
