import {
  createMessage,
  decodeBinary,
  decodeDatum,
  encodeBinary,
  hasField,
  registerSsdForkSchema,
  type Datum,
  type Message,
} from '@caffe-ts/proto';
import type { DatumRecord, DatumWriter } from './datum-db.js';
import { writeDbAtomically, type WriteDbOptions } from './db-write.js';
import { DataError } from './errors.js';
import { makeBox, type BoxGroup, type NormBox } from './ssd-bbox.js';

/*
 * AnnotatedDatum records, the SSD fork's database format (its create_annoset tool writes them):
 * a Datum (raw or an encoded JPEG/PNG) plus groups of normalised boxes, one group per class.
 * The schema is @caffe-ts/proto's registerSsdForkSchema(); it is registered on first use here.
 */

/** AnnotatedDatum.AnnotationType.BBOX, the fork's only annotation type. */
export const ANNOTATION_BBOX = 0;

/** A decoded AnnotatedDatum (protobuf field names, as in the fork's caffe.proto). */
export interface AnnotatedDatum extends Message {
  datum: Datum;
  type: number;
  annotation_group: Array<
    Message & {
      group_label: number;
      annotation: Array<Message & { instance_id: number; bbox: (Message & NormalizedBBoxFields) | null }>;
    }
  >;
}

interface NormalizedBBoxFields {
  xmin: number;
  ymin: number;
  xmax: number;
  ymax: number;
  difficult: boolean;
  size: number;
}

/** One box of an AnnotatedDatum being written. */
export interface AnnotatedBoxInit {
  xmin: number;
  ymin: number;
  xmax: number;
  ymax: number;
  difficult?: boolean;
  /** Annotation.instance_id (default: the box's index in its group). */
  instance_id?: number;
}

/** An AnnotatedDatum to write: the Datum (a message or its fields) and the box groups. */
export interface AnnotatedDatumInit {
  datum: Datum | Readonly<Record<string, unknown>>;
  /** 'BBOX' (default when there are groups), or null to leave the type unset. */
  type?: 'BBOX' | typeof ANNOTATION_BBOX | null;
  groups?: ReadonlyArray<{ group_label: number; boxes: readonly AnnotatedBoxInit[] }>;
}

/** The protobuf bytes of an AnnotatedDatum (as the fork's create_annoset stores them). */
export function encodeAnnotatedDatum(init: AnnotatedDatumInit): Uint8Array {
  registerSsdForkSchema();
  const groups = init.groups ?? [];
  const type = init.type === undefined ? 'BBOX' : init.type;
  const msg = createMessage('AnnotatedDatum', {
    datum: init.datum,
    ...(type === null ? {} : { type }),
    annotation_group: groups.map((g) => ({
      group_label: g.group_label,
      annotation: g.boxes.map((b, i) => ({
        instance_id: b.instance_id ?? i,
        bbox: { xmin: b.xmin, ymin: b.ymin, xmax: b.xmax, ymax: b.ymax, difficult: b.difficult ?? false },
      })),
    })),
  });
  return encodeBinary('AnnotatedDatum', msg);
}

const pre = (where: string) => (where ? `${where}: ` : '');

/** Whether the bytes read as a plain, complete Datum (to say so when one is found instead). */
function looksLikePlainDatum(bytes: Uint8Array): boolean {
  try {
    const d = decodeDatum(bytes);
    return d.encoded ? d.data.length > 0 : d.channels * d.height * d.width > 0;
  } catch {
    return false;
  }
}

/**
 * Decode one database record as an AnnotatedDatum. A record that does not decode, or has no
 * `datum` (field 1), is a DataError naming the key (saying so when it is a plain Datum, which a
 * Data layer reads).
 */
export function decodeAnnotatedRecord(rec: DatumRecord, where: string): AnnotatedDatum {
  registerSsdForkSchema();
  let msg: AnnotatedDatum;
  try {
    msg = decodeBinary<AnnotatedDatum>('AnnotatedDatum', rec.value);
  } catch (e) {
    throw new DataError(`${pre(where)}record '${rec.key}' is not a valid AnnotatedDatum (truncated or corrupt: ${(e as Error).message})`, { cause: e });
  }
  if (!hasField(msg, 'datum')) {
    const hint = looksLikePlainDatum(rec.value) ? ': it is a plain Datum (read it with a Data layer)' : '';
    throw new DataError(`${pre(where)}record '${rec.key}' is not an AnnotatedDatum: expected a datum (field 1) with annotation groups, found none${hint}`);
  }
  return msg;
}

/** Whether the record stores an annotation type (the fork's has_type()). */
export function hasAnnotationType(msg: AnnotatedDatum): boolean {
  return hasField(msg, 'type');
}

/** The box groups of a record as NormBoxes (unset corners read 0, as the fork's accessors). */
export function annotationGroups(msg: AnnotatedDatum): BoxGroup[] {
  return msg.annotation_group.map((g) => ({
    groupLabel: g.group_label,
    annotations: g.annotation.map((a) => {
      const b = a.bbox;
      const box: NormBox = b ? makeBox(b.xmin, b.ymin, b.xmax, b.ymax, b.difficult) : makeBox(0, 0, 0, 0);
      if (b && hasField(b, 'size')) box.size = b.size;
      return { instanceId: a.instance_id, box };
    }),
  }));
}

/**
 * Write a LevelDB or LMDB of AnnotatedDatum records (`options.backend`, default LevelDB), as the
 * fork's create_annoset does: keys as given (create_annoset uses `%08d_<image path>`), each value
 * an encoded AnnotatedDatum. Written atomically (see writeDbAtomically); returns the record count.
 */
export async function writeAnnotatedDatumDb(
  dbPath: string,
  records: Iterable<readonly [string, AnnotatedDatumInit]> | AsyncIterable<readonly [string, AnnotatedDatumInit]>,
  options: WriteDbOptions = {},
): Promise<number> {
  let n = 0;
  await writeDbAtomically(dbPath, options, async (writer: DatumWriter) => {
    for await (const [key, init] of records) {
      await writer.put(key, encodeAnnotatedDatum(init));
      n++;
    }
  });
  return n;
}
