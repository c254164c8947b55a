// Types for scripts/gen.mjs, so tests can import it.
export function stripProtoComments(text: string): string;
export function generate(protoText: string): { protoTs: string; typesTs: string };
export const paths: { proto: string; protoTs: string; typesTs: string };
