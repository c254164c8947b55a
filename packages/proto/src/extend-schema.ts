/**
 * Run-time schema extension, so a plugin layer brings its own parameter message and
 * LayerParameter field instead of editing caffe.proto (fork layers such as SSD's PriorBox use
 * their fork's field numbers, so the fork's model files load unchanged).
 */
import { ProtoSchemaError } from './errors.js';
import { caffeRoot, installDefaults, invalidateCaches, lookupType, protobuf } from './schema.js';

export interface FieldSpec {
  /** Message to extend, e.g. 'LayerParameter' or 'TransformationParameter'. */
  message: string;
  /** snake_case field name, e.g. 'prior_box_param'. */
  name: string;
  /** Field number. */
  id: number;
  /** A scalar type ('float', 'uint32', ...) or a message/enum name, e.g. 'PriorBoxParameter'. */
  type: string;
  /** 'optional' (default), 'repeated' or 'required'. */
  rule?: 'optional' | 'repeated' | 'required';
  /** Proto2 source declaring the types this field needs; `package caffe;` when it names none. */
  protoText?: string;
  /** `[default = ...]` for a scalar field. */
  defaultValue?: string | number | boolean;
  /** `[packed = true]` for a repeated scalar field. */
  packed?: boolean;
}

export interface LayerParamFieldSpec {
  /** Field name in LayerParameter, e.g. 'prior_box_param'. */
  name: string;
  /** Field number (use the fork's number for fork layers). */
  id: number;
  /** The parameter message, e.g. 'PriorBoxParameter'. */
  typeName: string;
  /** Proto2 source declaring `typeName` (optional when the type is already known). */
  protoText?: string;
}

function withPackage(text: string): string {
  if (/^\s*package\s+[\w.]+\s*;/m.test(text)) return text;
  const syntax = /^\s*syntax\s*=\s*["']proto[23]["']\s*;/m.exec(text);
  if (syntax) return text.replace(syntax[0], `${syntax[0]}\npackage caffe;`);
  return `syntax = "proto2";\npackage caffe;\n${text}`;
}

function sameDefinition(a: protobuf.ReflectionObject, b: protobuf.ReflectionObject): boolean {
  return JSON.stringify(a.toJSON()) === JSON.stringify(b.toJSON());
}

function typesIn(ns: protobuf.NamespaceBase, out: protobuf.Type[]): void {
  for (const o of ns.nestedArray) {
    if (o instanceof protobuf.Type) out.push(o);
    if (o instanceof protobuf.Namespace || o instanceof protobuf.Type) typesIn(o, out);
  }
}

/**
 * Adds the message and enum types declared in `protoText` (proto2; package `caffe` unless it
 * declares one). Re-adding an identical definition is a no-op (plugins may load twice); a
 * different definition under an existing name throws ProtoSchemaError.
 */
export function registerProtoTypes(protoText: string): void {
  const root = caffeRoot();
  let temp: protobuf.Root;
  try {
    temp = protobuf.parse(withPackage(protoText), new protobuf.Root(), { keepCase: true }).root;
  } catch (err) {
    throw new ProtoSchemaError(`cannot parse the proto snippet: ${(err as Error).message}`, { cause: err });
  }
  // Collect top-level definitions per package namespace.
  const added: protobuf.ReflectionObject[] = [];
  const walk = (ns: protobuf.NamespaceBase, target: protobuf.Namespace | protobuf.Root): void => {
    for (const obj of [...ns.nestedArray]) {
      const existing = target.nested?.[obj.name];
      if (obj instanceof protobuf.Type || obj instanceof protobuf.Enum) {
        if (existing) {
          if (!sameDefinition(existing, obj)) {
            throw new ProtoSchemaError(`type ${obj.fullName.slice(1)} is already defined differently`);
          }
          continue;
        }
        ns.remove(obj);
        target.add(obj);
        added.push(obj);
      } else if (obj instanceof protobuf.Namespace) {
        const sub = existing instanceof protobuf.Namespace ? existing : (target.define(obj.name) as protobuf.Namespace);
        walk(obj, sub);
      }
    }
  };
  try {
    walk(temp, root);
    root.resolveAll();
  } catch (err) {
    for (const obj of added) obj.parent?.remove(obj);
    if (err instanceof ProtoSchemaError) throw err;
    throw new ProtoSchemaError(`cannot add the proto snippet: ${(err as Error).message}`, { cause: err });
  }
  const types: protobuf.Type[] = [];
  for (const obj of added) {
    if (obj instanceof protobuf.Type) {
      types.push(obj);
      typesIn(obj, types);
    }
  }
  for (const t of types) installDefaults(t);
  invalidateCaches();
}

/** Adds a field to an existing message type; see FieldSpec. Identical re-registration is a no-op. */
export function registerField(spec: FieldSpec): void {
  const { name, id } = spec;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new ProtoSchemaError(`invalid field name '${name}'`);
  if (!Number.isInteger(id) || id < 1 || id > 536870911 || (id >= 19000 && id <= 19999)) {
    throw new ProtoSchemaError(`invalid field number ${id} for '${name}'`);
  }
  if (spec.protoText !== undefined) registerProtoTypes(spec.protoText);
  const type = lookupType(spec.message);
  const rule = spec.rule ?? 'optional';
  const existing = Object.prototype.hasOwnProperty.call(type.fields, name) ? type.fields[name] : undefined;
  const typeRef = resolveTypeName(type, spec.type);
  if (existing) {
    existing.resolve();
    const existingType = existing.resolvedType ? existing.resolvedType.fullName : existing.type;
    if (existing.id === id && existingType === typeRef && (existing.repeated ? 'repeated' : existing.required ? 'required' : 'optional') === rule) return;
    throw new ProtoSchemaError(
      `field '${name}' already exists in ${type.fullName.slice(1)} as number ${existing.id} (${existingType.replace(/^\./, '')})`,
    );
  }
  const clash = type.fieldsById[id];
  if (clash) {
    throw new ProtoSchemaError(`field number ${id} of ${type.fullName.slice(1)} is already used by '${clash.name}'`);
  }
  const options: Record<string, unknown> = {};
  if (spec.defaultValue !== undefined) options['default'] = spec.defaultValue;
  if (spec.packed) options['packed'] = true;
  const field = new protobuf.Field(name, id, typeRef, rule === 'optional' ? undefined : rule, Object.keys(options).length ? options : undefined);
  type.add(field);
  try {
    field.resolve();
  } catch (err) {
    type.remove(field);
    throw new ProtoSchemaError(`cannot add field '${name}': ${(err as Error).message}`, { cause: err });
  }
  // protobufjs's add() dropped encode/decode/verify; drop the converters too.
  const t = type as unknown as Record<string, unknown>;
  delete t['fromObject'];
  delete t['toObject'];
  // A new repeated field needs the generated constructor to create its own array.
  if (field.repeated) type.ctor = protobuf.Type.generateConstructor(type)() as unknown as protobuf.Constructor<object>;
  installDefaults(type);
  invalidateCaches();
}

const SCALAR_TYPES = new Set([
  'double', 'float', 'int32', 'uint32', 'sint32', 'fixed32', 'sfixed32',
  'int64', 'uint64', 'sint64', 'fixed64', 'sfixed64', 'bool', 'string', 'bytes',
]);

/** A fully qualified reference (`.caffe.Foo`) for message/enum names; scalars unchanged. */
function resolveTypeName(from: protobuf.Type, typeName: string): string {
  if (SCALAR_TYPES.has(typeName)) return typeName;
  const bare = typeName.replace(/^\./, '');
  const candidates = bare.includes('.') ? [bare, `caffe.${bare}`] : [`caffe.${bare}`, bare];
  for (const c of candidates) {
    const found = from.root.lookup(c.split('.'), [protobuf.Type, protobuf.Enum]);
    if (found) return found.fullName;
  }
  throw new ProtoSchemaError(`unknown type '${typeName}' (declare it in protoText or register it first)`);
}

/**
 * Adds a plugin layer's parameter field to LayerParameter, e.g.
 * `registerLayerParamField({ name: 'prior_box_param', id: 203, typeName: 'PriorBoxParameter',
 * protoText: 'message PriorBoxParameter { repeated float min_size = 1; ... }' })`.
 * Text and binary parsing, printing and defaults all see it afterwards.
 */
export function registerLayerParamField(spec: LayerParamFieldSpec): void {
  registerField({
    message: 'LayerParameter',
    name: spec.name,
    id: spec.id,
    type: spec.typeName,
    ...(spec.protoText === undefined ? {} : { protoText: spec.protoText }),
  });
}
