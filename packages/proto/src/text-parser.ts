/**
 * Protobuf text format (prototxt) parser driven by the reflection schema.
 *
 * Hand-written scanner over char codes (no regexes, no token objects) because model files run
 * to thousands of lines. The schema decides everything: repeated vs singular, enum names,
 * integer ranges, strings vs bytes. Errors are ProtoTextError with file:line:column and the
 * field path (`layer[3].convolution_param.kernel_size`).
 *
 * Accepted syntax, as C++ protobuf's TextFormat accepts it: `#` comments; `name: value`;
 * `name { ... }`, `name: { ... }`, `name < ... >`; repeated fields given several times or as
 * `name: [a, b]`; single- or double-quoted strings with C escapes, adjacent literals
 * concatenated; decimal/hex/octal integers; floats with exponents, `f` suffix, inf, nan;
 * booleans true/false/True/False/t/f/1/0; enums by name or number; optional `;` or `,` after
 * each field.
 */
import { ProtoTextError } from './errors.js';
import { didYouMean, typeInfoByName, typeInfo, type FieldInfo, type Message, type TypeInfo } from './schema.js';

export interface ParseTextOptions {
  /** Named in error messages and carried by ProtoTextError.file. */
  file?: string;
}

const TK_EOF = 0;
const TK_IDENT = 1;
const TK_NUMBER = 2;
const TK_STRING = 3;
const TK_PUNCT = 4;

const CH_NL = 10;
const CH_HASH = 35;
const CH_QUOTE = 34;
const CH_APOS = 39;
const CH_BACKSLASH = 92;
const CH_DOT = 46;
const CH_MINUS = 45;
const CH_COLON = 58;
const CH_SEMI = 59;
const CH_COMMA = 44;
const CH_LBRACE = 123;
const CH_RBRACE = 125;
const CH_LT = 60;
const CH_GT = 62;
const CH_LBRACKET = 91;
const CH_RBRACKET = 93;

/** Nesting limit, as in C++ protobuf, so hostile input cannot blow the stack. */
const MAX_DEPTH = 100;

const INT_RANGE: Record<string, [number, number]> = {
  int32: [-0x80000000, 0x7fffffff],
  sint32: [-0x80000000, 0x7fffffff],
  sfixed32: [-0x80000000, 0x7fffffff],
  uint32: [0, 0xffffffff],
  fixed32: [0, 0xffffffff],
};
const BIG_RANGE: Record<string, [bigint, bigint]> = {
  int64: [-(1n << 63n), (1n << 63n) - 1n],
  sint64: [-(1n << 63n), (1n << 63n) - 1n],
  sfixed64: [-(1n << 63n), (1n << 63n) - 1n],
  uint64: [0n, (1n << 64n) - 1n],
  fixed64: [0n, (1n << 64n) - 1n],
};

const utf8Decoder = new TextDecoder('utf-8');
const utf8Encoder = new TextEncoder();

function isIdentStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95;
}
function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isIdentPart(c: number): boolean {
  return isIdentStart(c) || isDigit(c);
}
function isHexDigit(c: number): boolean {
  return isDigit(c) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
}
function isOctDigit(c: number): boolean {
  return c >= 48 && c <= 55;
}

function pushUtf8(out: number[], cp: number): void {
  if (cp < 0x80) out.push(cp);
  else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 63));
  else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
  else out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
}

interface PathSeg {
  name: string;
  /** Element index for repeated fields, -1 for singular ones. */
  index: number;
}

class Parser {
  private readonly src: string;
  private readonly n: number;
  private readonly file: string | undefined;
  private pos = 0;
  private line = 1;
  private lineStart = 0;

  // Current token.
  private kind = TK_EOF;
  private start = 0;
  private end = 0;
  private tLine = 1;
  private tCol = 1;
  private punct = 0;
  private numFloat = false;
  private numHex = false;
  private numOctal = false;
  private strEscaped = false;

  private readonly path: PathSeg[] = [];

  constructor(src: string, file: string | undefined) {
    this.src = src;
    this.n = src.length;
    this.file = file;
    // Editors on Windows may prepend a UTF-8 byte-order mark; it is not part of the text.
    if (src.charCodeAt(0) === 0xfeff) this.pos = this.lineStart = 1;
    this.next();
  }

  // ---- errors -------------------------------------------------------------------------------

  private pathString(extra?: string): string {
    let s = '';
    for (const seg of this.path) {
      s += s === '' ? seg.name : `.${seg.name}`;
      if (seg.index >= 0) s += `[${seg.index}]`;
    }
    if (extra !== undefined) s += s === '' ? extra : `.${extra}`;
    return s;
  }

  private fail(reason: string, line: number, column: number, fieldPath: string): never {
    throw new ProtoTextError(reason, {
      ...(this.file === undefined ? {} : { file: this.file }),
      line,
      column,
      fieldPath,
    });
  }

  /** Fails at the current token with the field path extended by `field` (if given). */
  private failHere(reason: string, field?: string): never {
    const fieldPath = this.pathString(field);
    this.fail(fieldPath === '' ? reason : `${reason} (at ${fieldPath})`, this.tLine, this.tCol, fieldPath);
  }

  private describeToken(): string {
    switch (this.kind) {
      case TK_EOF:
        return 'end of input';
      case TK_STRING: {
        const s = this.src.slice(this.start, this.end);
        return s.length > 24 ? `${s.slice(0, 21)}...` : s;
      }
      default:
        return `'${this.src.slice(this.start, this.end)}'`;
    }
  }

  // ---- scanner ------------------------------------------------------------------------------

  private next(): void {
    const src = this.src;
    const n = this.n;
    let pos = this.pos;
    for (;;) {
      const c = src.charCodeAt(pos);
      if (c === CH_NL) {
        pos++;
        this.line++;
        this.lineStart = pos;
      } else if (c === 32 || c === 9 || c === 13 || c === 11 || c === 12) {
        pos++;
      } else if (c === CH_HASH) {
        while (pos < n && src.charCodeAt(pos) !== CH_NL) pos++;
      } else break;
    }
    this.start = pos;
    this.tLine = this.line;
    this.tCol = pos - this.lineStart + 1;
    if (pos >= n) {
      this.kind = TK_EOF;
      this.end = this.pos = pos;
      return;
    }
    const c = src.charCodeAt(pos);
    if (isIdentStart(c)) {
      pos++;
      while (pos < n && isIdentPart(src.charCodeAt(pos))) pos++;
      this.kind = TK_IDENT;
    } else if (isDigit(c) || (c === CH_DOT && isDigit(src.charCodeAt(pos + 1)))) {
      pos = this.scanNumber(pos);
      this.kind = TK_NUMBER;
    } else if (c === CH_QUOTE || c === CH_APOS) {
      pos = this.scanString(pos, c);
      this.kind = TK_STRING;
    } else if (
      c === CH_LBRACE || c === CH_RBRACE || c === CH_COLON || c === CH_SEMI || c === CH_COMMA ||
      c === CH_LT || c === CH_GT || c === CH_LBRACKET || c === CH_RBRACKET || c === CH_MINUS
    ) {
      pos++;
      this.kind = TK_PUNCT;
      this.punct = c;
    } else {
      const ch = String.fromCodePoint(src.codePointAt(pos) ?? c);
      this.fail(`unexpected character '${ch}'`, this.tLine, this.tCol, this.pathString());
    }
    this.end = this.pos = pos;
  }

  private scanNumber(pos: number): number {
    const src = this.src;
    const start = pos;
    let isFloat = false;
    let isHex = false;
    let isOctal = false;
    const c0 = src.charCodeAt(pos);
    const c1 = src.charCodeAt(pos + 1);
    if (c0 === 48 && (c1 === 120 || c1 === 88)) {
      pos += 2;
      const digits = pos;
      while (isHexDigit(src.charCodeAt(pos))) pos++;
      if (pos === digits) this.fail(`invalid hex number '${src.slice(start, pos)}'`, this.tLine, this.tCol, this.pathString());
      isHex = true;
    } else {
      while (isDigit(src.charCodeAt(pos))) pos++;
      if (src.charCodeAt(pos) === CH_DOT) {
        isFloat = true;
        pos++;
        while (isDigit(src.charCodeAt(pos))) pos++;
      }
      const e = src.charCodeAt(pos);
      if (e === 101 || e === 69) {
        let j = pos + 1;
        const s = src.charCodeAt(j);
        if (s === 43 || s === CH_MINUS) j++;
        if (!isDigit(src.charCodeAt(j))) {
          this.fail(`invalid number '${src.slice(start, j)}' (exponent has no digits)`, this.tLine, this.tCol, this.pathString());
        }
        while (isDigit(src.charCodeAt(j))) j++;
        pos = j;
        isFloat = true;
      }
      const f = src.charCodeAt(pos);
      if (f === 102 || f === 70) {
        pos++;
        isFloat = true;
      } else if (!isFloat && c0 === 48 && pos - start > 1) {
        isOctal = true;
        for (let k = start + 1; k < pos; k++) {
          if (!isOctDigit(src.charCodeAt(k))) {
            this.fail(`invalid octal number '${src.slice(start, pos)}'`, this.tLine, this.tCol, this.pathString());
          }
        }
      }
    }
    const after = src.charCodeAt(pos);
    if (isIdentPart(after) || after === CH_DOT) {
      let j = pos;
      while (isIdentPart(src.charCodeAt(j)) || src.charCodeAt(j) === CH_DOT) j++;
      this.fail(`invalid number '${src.slice(start, j)}'`, this.tLine, this.tCol, this.pathString());
    }
    this.numFloat = isFloat;
    this.numHex = isHex;
    this.numOctal = isOctal;
    return pos;
  }

  private scanString(pos: number, quote: number): number {
    const src = this.src;
    const n = this.n;
    let i = pos + 1;
    let escaped = false;
    for (;;) {
      if (i >= n) this.fail('unterminated string', this.tLine, this.tCol, this.pathString());
      const c = src.charCodeAt(i);
      if (c === quote) break;
      if (c === CH_NL) this.fail('unterminated string (line break inside quotes)', this.tLine, this.tCol, this.pathString());
      if (c === CH_BACKSLASH) {
        escaped = true;
        if (i + 1 >= n || src.charCodeAt(i + 1) === CH_NL) {
          this.fail('unterminated string', this.tLine, this.tCol, this.pathString());
        }
        i += 2;
      } else i++;
    }
    this.strEscaped = escaped;
    return i + 1;
  }

  /** UTF-8 bytes of the current string token, escapes resolved. */
  private stringBytes(out: number[]): void {
    const src = this.src;
    const end = this.end - 1;
    let i = this.start + 1;
    const escErr = (at: number, what: string): never =>
      this.fail(what, this.tLine, this.tCol + (at - this.start), this.pathString());
    while (i < end) {
      const c = src.charCodeAt(i);
      if (c !== CH_BACKSLASH) {
        if (c < 0x80) {
          out.push(c);
          i++;
        } else {
          const cp = src.codePointAt(i)!;
          pushUtf8(out, cp);
          i += cp > 0xffff ? 2 : 1;
        }
        continue;
      }
      const at = i;
      const e = src.charCodeAt(i + 1);
      i += 2;
      switch (e) {
        case 110: out.push(10); break; // \n
        case 116: out.push(9); break; // \t
        case 114: out.push(13); break; // \r
        case 97: out.push(7); break; // \a
        case 98: out.push(8); break; // \b
        case 102: out.push(12); break; // \f
        case 118: out.push(11); break; // \v
        case 92: out.push(92); break;
        case 39: out.push(39); break;
        case 34: out.push(34); break;
        case 63: out.push(63); break; // \?
        case 120:
        case 88: {
          // \xH or \xHH
          let v = 0;
          let k = 0;
          while (k < 2 && i < end && isHexDigit(src.charCodeAt(i))) {
            v = v * 16 + parseInt(src[i]!, 16);
            i++;
            k++;
          }
          if (k === 0) escErr(at, "invalid escape '\\x' (no hex digits)");
          out.push(v);
          break;
        }
        case 117:
        case 85: {
          // \uXXXX or \UXXXXXXXX
          const len = e === 117 ? 4 : 8;
          const hex = src.slice(i, i + len);
          if (hex.length !== len || !/^[0-9a-fA-F]+$/.test(hex) || i + len > end) {
            escErr(at, `invalid escape '\\${String.fromCharCode(e)}' (expected ${len} hex digits)`);
          }
          let cp = parseInt(hex, 16);
          i += len;
          // Join a UTF-16 surrogate pair written as two \u escapes.
          if (cp >= 0xd800 && cp <= 0xdbff && src.charCodeAt(i) === CH_BACKSLASH && src.charCodeAt(i + 1) === 117) {
            const lo = parseInt(src.slice(i + 2, i + 6), 16);
            if (lo >= 0xdc00 && lo <= 0xdfff) {
              cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
              i += 6;
            }
          }
          if (cp > 0x10ffff) escErr(at, `invalid escape: code point ${hex} is beyond U+10FFFF`);
          pushUtf8(out, cp);
          break;
        }
        default: {
          if (isOctDigit(e)) {
            // \o, \oo or \ooo
            let v = e - 48;
            let k = 1;
            while (k < 3 && i < end && isOctDigit(src.charCodeAt(i))) {
              v = v * 8 + (src.charCodeAt(i) - 48);
              i++;
              k++;
            }
            if (v > 255) escErr(at, `invalid escape '${src.slice(at, i)}' (octal value above 255)`);
            out.push(v);
          } else {
            escErr(at, `invalid escape sequence '\\${String.fromCharCode(e)}'`);
          }
        }
      }
    }
  }

  // ---- values -------------------------------------------------------------------------------

  private isPunct(c: number): boolean {
    return this.kind === TK_PUNCT && this.punct === c;
  }

  private readStringValue(f: FieldInfo): string | Uint8Array {
    if (this.kind !== TK_STRING) {
      this.failHere(`expected a quoted string for field '${f.name}' (${f.kind}), found ${this.describeToken()}`, f.name);
    }
    const wantBytes = f.kind === 'bytes';
    // Fast path: one literal without escapes.
    let text = '';
    let bytes: number[] | null = null;
    while (this.kind === TK_STRING) {
      if (bytes === null && !this.strEscaped && !wantBytes) {
        text += this.src.slice(this.start + 1, this.end - 1);
      } else {
        if (bytes === null) {
          bytes = [];
          if (text !== '') for (const b of utf8Encoder.encode(text)) bytes.push(b);
        }
        this.stringBytes(bytes);
      }
      this.next();
    }
    if (wantBytes) return Uint8Array.from(bytes ?? []);
    return bytes === null ? text : utf8Decoder.decode(Uint8Array.from(bytes));
  }

  private numberText(): string {
    return this.src.slice(this.start, this.end);
  }

  private readFloat(f: FieldInfo, neg: boolean): number {
    let v: number;
    if (this.kind === TK_NUMBER) {
      const t = this.numberText();
      if (this.numHex) v = parseInt(t.slice(2), 16);
      else if (this.numOctal) v = parseInt(t, 8);
      else {
        const last = t.charCodeAt(t.length - 1);
        v = Number(last === 102 || last === 70 ? t.slice(0, -1) : t);
      }
    } else if (this.kind === TK_IDENT) {
      const t = this.numberText().toLowerCase();
      if (t === 'inf' || t === 'infinity') v = Infinity;
      else if (t === 'nan') v = NaN;
      else this.failHere(`expected a number for field '${f.name}' (${f.kind}), found ${this.describeToken()}`, f.name);
    } else {
      this.failHere(`expected a number for field '${f.name}' (${f.kind}), found ${this.describeToken()}`, f.name);
    }
    this.next();
    if (neg) v = -v;
    return f.kind === 'float' ? Math.fround(v) : v;
  }

  private readInteger(f: FieldInfo, neg: boolean, negLine: number, negCol: number, kindName: string): number {
    if (this.kind !== TK_NUMBER || this.numFloat) {
      this.failHere(`expected an integer for field '${f.name}' (${kindName}), found ${this.describeToken()}`, f.name);
    }
    const t = this.numberText();
    const line = neg ? negLine : this.tLine;
    const col = neg ? negCol : this.tCol;
    const shown = neg ? `-${t}` : t;
    const path = this.pathString(f.name);
    const outOfRange = (why: string): never =>
      this.fail(`value ${shown} is out of range for field '${f.name}' (${kindName}${why}) (at ${path})`, line, col, path);
    let big: bigint;
    if (this.numHex) big = BigInt(t);
    else if (this.numOctal) big = BigInt(`0o${t.slice(1)}`);
    else big = BigInt(t);
    if (neg) big = -big;
    const small = INT_RANGE[kindName];
    if (small) {
      if (big < BigInt(small[0]) || big > BigInt(small[1])) outOfRange('');
    } else {
      const r = BIG_RANGE[kindName];
      if (r && (big < r[0] || big > r[1])) outOfRange('');
      if (big > BigInt(Number.MAX_SAFE_INTEGER) || big < BigInt(Number.MIN_SAFE_INTEGER)) {
        outOfRange('; JS numbers hold integers up to 2^53 exactly');
      }
    }
    this.next();
    return Number(big);
  }

  private readScalar(f: FieldInfo): unknown {
    let neg = false;
    const negLine = this.tLine;
    const negCol = this.tCol;
    if (this.isPunct(CH_MINUS)) {
      neg = true;
      this.next();
    }
    switch (f.kind) {
      case 'string':
      case 'bytes':
        if (neg) this.fail(`expected a quoted string for field '${f.name}', found '-'`, negLine, negCol, this.pathString(f.name));
        return this.readStringValue(f);
      case 'bool': {
        if (!neg) {
          const t = this.numberText();
          if (this.kind === TK_IDENT) {
            if (t === 'true' || t === 'True' || t === 't') return this.nextWith(true);
            if (t === 'false' || t === 'False' || t === 'f') return this.nextWith(false);
          } else if (this.kind === TK_NUMBER && !this.numFloat) {
            if (t === '1') return this.nextWith(true);
            if (t === '0') return this.nextWith(false);
          }
        }
        return this.failHere(
          `expected true or false for field '${f.name}' (bool), found ${neg ? `'-${this.numberText()}'` : this.describeToken()}`,
          f.name,
        );
      }
      case 'enum': {
        const e = f.enumInfo!;
        const expected = `(expected one of ${e.names.join(', ')})`;
        if (this.kind === TK_IDENT && !neg) {
          const name = this.numberText();
          const v = e.byName.get(name);
          if (v === undefined) this.failHere(`bad value '${name}' for enum ${e.fullName} ${expected}`, f.name);
          return this.nextWith(v);
        }
        if (this.kind === TK_NUMBER && !this.numFloat) {
          const line = neg ? negLine : this.tLine;
          const col = neg ? negCol : this.tCol;
          const shown = (neg ? '-' : '') + this.numberText();
          const v = this.readInteger(f, neg, negLine, negCol, 'int32');
          if (!e.nameOf.has(v)) {
            const path = this.pathString(f.name);
            this.fail(`bad value ${shown} for enum ${e.fullName} ${expected} (at ${path})`, line, col, path);
          }
          return v;
        }
        return this.failHere(
          `bad value ${neg ? `'-${this.numberText()}'` : this.describeToken()} for enum ${e.fullName} ${expected}`,
          f.name,
        );
      }
      case 'float':
      case 'double':
        return this.readFloat(f, neg);
      case 'message':
        throw new Error('unreachable: message field read as scalar');
      default:
        return this.readInteger(f, neg, negLine, negCol, f.kind);
    }
  }

  private nextWith<V>(v: V): V {
    this.next();
    return v;
  }

  // ---- messages -----------------------------------------------------------------------------

  private store(msg: Message, f: FieldInfo, value: unknown, line: number, col: number): void {
    if (f.repeated) {
      let arr = Object.prototype.hasOwnProperty.call(msg, f.name) ? (msg[f.name] as unknown[]) : undefined;
      if (!arr) msg[f.name] = arr = [];
      arr.push(value);
    } else {
      if (Object.prototype.hasOwnProperty.call(msg, f.name) && msg[f.name] != null) {
        const path = this.pathString(f.name);
        this.fail(`non-repeated field '${f.name}' is specified multiple times (at ${path})`, line, col, path);
      }
      msg[f.name] = value;
    }
  }

  private elementIndex(msg: Message, f: FieldInfo): number {
    if (!f.repeated) return -1;
    const arr = msg[f.name] as unknown[] | undefined;
    return Object.prototype.hasOwnProperty.call(msg, f.name) && arr ? arr.length : 0;
  }

  private readSubMessage(msg: Message, f: FieldInfo, line: number, col: number): void {
    let close: number;
    if (this.isPunct(CH_LBRACE)) close = CH_RBRACE;
    else if (this.isPunct(CH_LT)) close = CH_GT;
    else this.failHere(`expected '{' after message field '${f.name}', found ${this.describeToken()}`, f.name);
    if (this.path.length >= MAX_DEPTH) this.failHere(`messages nested deeper than ${MAX_DEPTH} levels`, f.name);
    const sub = typeInfo(f.messageType!);
    const child = new sub.ctor();
    if (!f.repeated && Object.prototype.hasOwnProperty.call(msg, f.name) && msg[f.name] != null) {
      const path = this.pathString(f.name);
      this.fail(`non-repeated field '${f.name}' is specified multiple times (at ${path})`, line, col, path);
    }
    locations.set(child, this.file === undefined ? { line, column: col } : { file: this.file, line, column: col });
    this.path.push({ name: f.name, index: this.elementIndex(msg, f) });
    const openLine = this.tLine;
    const openCol = this.tCol;
    this.next();
    this.readFields(sub, child, close, openLine, openCol);
    this.path.pop();
    this.store(msg, f, child, line, col);
  }

  private readField(info: TypeInfo, msg: Message): void {
    const name = this.numberText();
    const line = this.tLine;
    const col = this.tCol;
    const f = info.fields.get(name);
    if (!f) {
      const at = this.pathString();
      this.fail(
        `unknown field '${name}' in ${info.fullName}${at === '' ? '' : ` (at ${at})`}${didYouMean(name, info.fields.keys())}`,
        line,
        col,
        this.pathString(name),
      );
    }
    this.next();
    if (f.kind === 'message') {
      if (this.isPunct(CH_COLON)) this.next();
      if (this.isPunct(CH_LBRACKET)) {
        if (!f.repeated) this.failHere(`field '${f.name}' is not repeated, so it cannot take a [...] list`, f.name);
        this.next();
        if (this.isPunct(CH_RBRACKET)) this.next();
        else {
          for (;;) {
            this.readSubMessage(msg, f, line, col);
            if (this.isPunct(CH_COMMA)) this.next();
            else if (this.isPunct(CH_RBRACKET)) {
              this.next();
              break;
            } else this.failHere(`expected ',' or ']' in the list for field '${f.name}', found ${this.describeToken()}`, f.name);
          }
        }
      } else {
        this.readSubMessage(msg, f, line, col);
      }
    } else {
      if (!this.isPunct(CH_COLON)) {
        this.failHere(`expected ':' after field '${f.name}', found ${this.describeToken()}`, f.name);
      }
      this.next();
      if (this.isPunct(CH_LBRACKET)) {
        if (!f.repeated) this.failHere(`field '${f.name}' is not repeated, so it cannot take a [...] list`, f.name);
        this.next();
        if (this.isPunct(CH_RBRACKET)) this.next();
        else {
          for (;;) {
            this.store(msg, f, this.readScalar(f), line, col);
            if (this.isPunct(CH_COMMA)) this.next();
            else if (this.isPunct(CH_RBRACKET)) {
              this.next();
              break;
            } else this.failHere(`expected ',' or ']' in the list for field '${f.name}', found ${this.describeToken()}`, f.name);
          }
        }
      } else {
        this.store(msg, f, this.readScalar(f), line, col);
      }
    }
    if (this.isPunct(CH_SEMI) || this.isPunct(CH_COMMA)) this.next();
  }

  /** Reads fields until `close` ('}' or '>'), or until the end of input when close is -1. */
  readFields(info: TypeInfo, msg: Message, close: number, openLine: number, openCol: number): void {
    for (;;) {
      if (this.kind === TK_IDENT) {
        this.readField(info, msg);
        continue;
      }
      if (this.kind === TK_EOF) {
        if (close < 0) break;
        this.failHere(
          `unexpected end of input: '${String.fromCharCode(close)}' missing for the block opened at ${openLine}:${openCol}`,
        );
      }
      if (this.kind === TK_PUNCT && this.punct === close) break;
      if (this.kind === TK_PUNCT && (this.punct === CH_RBRACE || this.punct === CH_GT)) {
        this.failHere(
          close < 0
            ? `unexpected '${String.fromCharCode(this.punct)}' (no block is open)`
            : `expected '${String.fromCharCode(close)}' to close the block opened at ${openLine}:${openCol}, found ${this.describeToken()}`,
        );
      }
      this.failHere(`expected a field name, found ${this.describeToken()}`);
    }
    for (const r of info.required) {
      if (!Object.prototype.hasOwnProperty.call(msg, r.name) || msg[r.name] == null) {
        this.failHere(`missing required field '${r.name}' in ${info.fullName}`);
      }
    }
    if (close >= 0) this.next();
  }
}

/** Where each parsed sub-message began (its field name), for errors found after parsing. */
const locations = new WeakMap<object, { file?: string; line: number; column: number }>();

/**
 * The file, line and column where `msg` was written in the prototxt it was parsed from (the
 * position of its field name, e.g. `layer {`), or undefined for messages not parsed from text.
 */
export function textLocationOf(msg: object): { file?: string; line: number; column: number } | undefined {
  return locations.get(msg);
}

/** Give `to` (a copy of `from`) the same text location, so errors about the copy can point at the file. */
export function copyTextLocation(from: object, to: object): void {
  const loc = locations.get(from);
  if (loc) locations.set(to, loc);
}

/** Parses prototxt `text` as the message type `info` into a fresh message. */
export function parseTextWithInfo<T>(info: TypeInfo, text: string, opts: ParseTextOptions = {}): T {
  const p = new Parser(text, opts.file);
  const msg = new info.ctor();
  p.readFields(info, msg, -1, 1, 1);
  return msg as T;
}

/**
 * Parses protobuf text format (a .prototxt) as `typeName` (e.g. 'NetParameter').
 * Throws ProtoTextError (file:line:column and field path) on anything that does not fit.
 */
export function parseText<T = Message>(typeName: string, text: string, opts: ParseTextOptions = {}): T {
  return parseTextWithInfo<T>(typeInfoByName(typeName), text, opts);
}
