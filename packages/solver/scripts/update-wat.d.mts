export declare function generateUpdateWat(): string;
