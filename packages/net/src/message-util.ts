import { copyTextLocation, textLocationOf } from '@caffe-ts/proto';

/**
 * A shallow copy of a protobufjs message: same prototype (so unset fields still read Caffe's
 * defaults and presence is preserved), own fields copied, repeated fields as new arrays so the
 * copy's lists can be edited without touching the original. Sub-messages are shared: copy
 * those you mean to change.
 */
export function shallowClone<T extends object>(msg: T): T {
  const copy = Object.create(Object.getPrototypeOf(msg) as object) as T;
  for (const key of Object.keys(msg)) {
    const v = (msg as Record<string, unknown>)[key];
    (copy as Record<string, unknown>)[key] = Array.isArray(v) ? v.slice() : v;
  }
  copyTextLocation(msg, copy);
  return copy;
}

/** ` (layer defined at file:line:column)` for a layer parsed from a named prototxt, else ''. */
export function layerDefinedAt(lp: object): string {
  const loc = textLocationOf(lp);
  return loc?.file ? ` (layer defined at ${loc.file}:${loc.line}:${loc.column})` : '';
}
