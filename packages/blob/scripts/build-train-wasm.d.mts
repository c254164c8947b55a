export declare const TRAIN_GENERATED_PATH: string;
export declare function renderTrainWasm(): Promise<string>;
