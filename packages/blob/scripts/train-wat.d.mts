export declare function generateTrainWat(): string;
