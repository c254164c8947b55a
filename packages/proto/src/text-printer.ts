/**
 * Protobuf text format printer in C++ Caffe's style: 2-space indent, `name: value` lines,
 * `name {` blocks, one line per repeated element, enums by name, only present fields.
 *
 * Floats print as the shortest decimal that reads back to the same float32 (0.0005, not
 * 0.0005000000237), doubles as the shortest decimal that reads back to the same double, so
 * print → parse is exact and printing is stable.
 */
import { typeInfo, typeInfoByName, type FieldInfo, type Message, type TypeInfo } from './schema.js';

export interface PrintTextOptions {
  /**
   * 'declaration' (default): fields in caffe.proto declaration order. 'number': by field number,
   * which is what C++ Caffe writes, for byte-identical output with its tools.
   */
  fieldOrder?: 'declaration' | 'number';
}

/** Shortest decimal that reads back (via Math.fround) to the same float32 as `v`. */
export function formatFloat32(v: number): string {
  if (Number.isNaN(v)) return 'nan';
  if (v === Infinity) return 'inf';
  if (v === -Infinity) return '-inf';
  if (v === 0) return Object.is(v, -0) ? '-0' : '0';
  const f = Math.fround(v);
  if (!Number.isFinite(f)) return f > 0 ? 'inf' : '-inf';
  for (let p = 1; p <= 9; p++) {
    const n = Number(f.toPrecision(p));
    if (Math.fround(n) === f) return String(n);
  }
  return String(f);
}

/** Shortest decimal that reads back to the same double. */
export function formatDouble(v: number): string {
  if (Number.isNaN(v)) return 'nan';
  if (v === Infinity) return 'inf';
  if (v === -Infinity) return '-inf';
  if (v === 0 && Object.is(v, -0)) return '-0';
  return String(v);
}

function oct3(b: number): string {
  return b.toString(8).padStart(3, '0');
}

/** A double-quoted literal; UTF-8 text stays readable, control characters are escaped. */
export function quoteString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    switch (c) {
      case 10: out += '\\n'; break;
      case 13: out += '\\r'; break;
      case 9: out += '\\t'; break;
      case 34: out += '\\"'; break;
      case 92: out += '\\\\'; break;
      default:
        out += c < 0x20 || c === 0x7f ? `\\${oct3(c)}` : s[i];
    }
  }
  return out + '"';
}

/** A double-quoted literal of raw bytes: printable ASCII as is, everything else octal-escaped. */
export function quoteBytes(bytes: ArrayLike<number>): string {
  let out = '"';
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]! & 0xff;
    switch (c) {
      case 10: out += '\\n'; break;
      case 13: out += '\\r'; break;
      case 9: out += '\\t'; break;
      case 34: out += '\\"'; break;
      case 39: out += "\\'"; break;
      case 92: out += '\\\\'; break;
      default:
        out += c < 0x20 || c >= 0x7f ? `\\${oct3(c)}` : String.fromCharCode(c);
    }
  }
  return out + '"';
}

function formatScalar(f: FieldInfo, v: unknown): string {
  switch (f.kind) {
    case 'float':
      return formatFloat32(Number(v));
    case 'double':
      return formatDouble(Number(v));
    case 'bool':
      return v ? 'true' : 'false';
    case 'string':
      return quoteString(String(v));
    case 'bytes':
      return typeof v === 'string' ? quoteString(v) : quoteBytes(v as ArrayLike<number>);
    case 'enum': {
      const n = Number(v);
      return f.enumInfo!.nameOf.get(n) ?? String(n);
    }
    default:
      // Integers; String() also handles a Long or bigint someone stored.
      return String(v);
  }
}

const INDENTS: string[] = [''];
function indent(depth: number): string {
  while (INDENTS.length <= depth) INDENTS.push(INDENTS[INDENTS.length - 1] + '  ');
  return INDENTS[depth]!;
}

function present(msg: Message, f: FieldInfo): boolean {
  if (!Object.prototype.hasOwnProperty.call(msg, f.name)) return false;
  const v = msg[f.name];
  if (v === undefined || v === null) return false;
  if (f.repeated) return (v as ArrayLike<unknown>).length > 0;
  return true;
}

function printMessage(info: TypeInfo, msg: Message, depth: number, byNumber: boolean, out: string[]): void {
  const pad = indent(depth);
  for (const f of byNumber ? info.byNumber : info.byDeclaration) {
    if (!present(msg, f)) continue;
    const v = msg[f.name];
    if (f.kind === 'message') {
      const sub = typeInfo(f.messageType!);
      const items = f.repeated ? (v as ArrayLike<Message>) : [v as Message];
      for (let i = 0; i < items.length; i++) {
        out.push(`${pad}${f.name} {\n`);
        printMessage(sub, items[i]!, depth + 1, byNumber, out);
        out.push(`${pad}}\n`);
      }
    } else if (f.repeated) {
      const items = v as ArrayLike<unknown>;
      for (let i = 0; i < items.length; i++) out.push(`${pad}${f.name}: ${formatScalar(f, items[i])}\n`);
    } else {
      out.push(`${pad}${f.name}: ${formatScalar(f, v)}\n`);
    }
  }
}

/** Prints `msg` (a message of `typeName`) as protobuf text format. */
export function printText(typeName: string, msg: object, opts: PrintTextOptions = {}): string {
  const out: string[] = [];
  printMessage(typeInfoByName(typeName), msg as Message, 0, opts.fieldOrder === 'number', out);
  return out.join('');
}
