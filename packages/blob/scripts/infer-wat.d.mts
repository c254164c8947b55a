export declare function generateInferWat(options?: { shared?: boolean }): string;
