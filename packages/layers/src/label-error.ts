import type { Blob } from '@caffe-ts/blob';
import { textLocationOf, type LayerParameter } from '@caffe-ts/proto';

/**
 * Database keys of the records a label blob's batch items came from, keyed by the blob's data
 * memory (a split of the label shares that memory, so its consumers see the same keys).
 */
const recordKeys = new WeakMap<object, readonly string[]>();

/**
 * Data layers: say which database record each batch item of `blob` (axis 0) came from, so that
 * a bad label can be traced to its record; `null` forgets (e.g. for a batch without keys).
 */
export function setBlobRecordKeys(blob: Blob, keys: readonly string[] | null): void {
  if (keys) recordKeys.set(blob.data, keys);
  else recordKeys.delete(blob.data);
}

/** The record keys set for `blob`'s batch items by the data layer that filled it, if any. */
export function blobRecordKeys(blob: Blob): readonly string[] | undefined {
  return recordKeys.get(blob.data);
}

/**
 * The message for a label outside [0, classes): the value, the bottom blob that holds it, the
 * batch item (axis 0 of the label blob), the element within the item when an item has several
 * labels, the database record when the data layer recorded it, the valid range, and where the
 * layer is defined when it was parsed from a file. Used with Layer.fail, which adds the layer.
 */
export function labelOutOfRangeMessage(
  param: LayerParameter,
  label: Blob,
  labelBottom: number,
  value: number,
  index: number,
  classes: number,
): string {
  const perItem = label.shape.length > 0 && label.shape[0]! > 0 ? label.count() / label.shape[0]! : 1;
  const item = Math.floor(index / perItem);
  const parts = [`batch item ${item}`];
  if (perItem > 1) parts.push(`label ${index % perItem} of ${perItem} in the item`);
  const key = blobRecordKeys(label)?.[item];
  if (key !== undefined) parts.push(`record '${key}'`);
  const name = param.bottom[labelBottom];
  const blob = name === undefined ? `bottom ${labelBottom}` : `bottom '${name}'`;
  const loc = textLocationOf(param);
  const at = loc?.file ? ` (layer defined at ${loc.file}:${loc.line}:${loc.column})` : '';
  return `label ${value} in ${blob} (${parts.join(', ')}) is outside the valid range [0, ${classes - 1}] (${classes} classes)${at}`;
}
