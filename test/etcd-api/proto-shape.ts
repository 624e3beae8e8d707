// The wire-relevant shape of a set of .proto files, for comparing raftkv's proto/etcd with etcd's own files:
// every service, method (request and response type, stream flags), message (syntax), field (number, type,
// label, map key, packing, oneof) and enum value, flattened to "kind name" -> description, and the comparison
// of two shapes. Comments, layout and options (gogoproto, google.api) are not part of the shape.
import protobuf from 'protobufjs';

/** "kind full.name" (kind: service, rpc, message, oneof, field, enum, value) -> what must match. */
export type ProtoShape = Map<string, string>;

export interface ShapeOptions {
  /** false: enum values keyed by number, not name (the etcd3 npm client renames them, e.g. NONE -> None). */
  readonly enumValueNames: boolean;
}

function nameOf(obj: protobuf.ReflectionObject): string {
  return obj.fullName.slice(1);
}

function fieldDescription(field: protobuf.Field): string {
  const type = field.resolvedType !== null ? nameOf(field.resolvedType) : field.type;
  const label = field instanceof protobuf.MapField ? `map<${field.keyType}> ` : field.repeated ? 'repeated ' : '';
  const packable = field.resolvedType instanceof protobuf.Enum || field.type in protobuf.types.packed; // numeric
  const packed = field.repeated && packable && field.packed ? ' packed' : '';
  const oneof = field.partOf !== null ? ` oneof ${field.partOf.name}` : '';
  return `${field.id} ${label}${type}${packed}${oneof}`;
}

function addEnum(shape: ProtoShape, e: protobuf.Enum, options: ShapeOptions): void {
  shape.set(`enum ${nameOf(e)}`, 'enum');
  for (const [name, id] of Object.entries(e.values)) {
    if (options.enumValueNames) shape.set(`value ${nameOf(e)}.${name}`, String(id));
    else shape.set(`value ${nameOf(e)}.#${id}`, String(id));
  }
}

function addNamespace(shape: ProtoShape, ns: protobuf.NamespaceBase, options: ShapeOptions): void {
  for (const nested of ns.nestedArray) {
    if (nested instanceof protobuf.Enum) addEnum(shape, nested, options);
    else if (nested instanceof protobuf.Service) {
      shape.set(`service ${nameOf(nested)}`, 'service');
      for (const m of nested.methodsArray) {
        const req = m.resolvedRequestType !== null ? nameOf(m.resolvedRequestType) : m.requestType;
        const res = m.resolvedResponseType !== null ? nameOf(m.resolvedResponseType) : m.responseType;
        shape.set(`rpc ${nameOf(m)}`, `(${m.requestStream === true ? 'stream ' : ''}${req}) returns (${m.responseStream === true ? 'stream ' : ''}${res})`);
      }
    } else if (nested instanceof protobuf.Type) {
      shape.set(`message ${nameOf(nested)}`, syntaxOf(nested));
      for (const oneof of nested.oneofsArray) shape.set(`oneof ${nameOf(oneof)}`, 'oneof');
      for (const field of nested.fieldsArray) shape.set(`field ${nameOf(field)}`, fieldDescription(field));
      addNamespace(shape, nested, options);
    } else if (nested instanceof protobuf.Namespace) addNamespace(shape, nested, options);
  }
}

/** proto2 or proto3 (protobufjs 8 records the syntax of a type's file as its edition). */
function syntaxOf(type: protobuf.Type): string {
  const edition = (type as unknown as { _edition?: unknown })._edition;
  return typeof edition === 'string' ? edition : 'proto2';
}

/** The shape of a loaded Root, limited to the given packages. */
export function protoShape(root: protobuf.Root, packages: readonly string[], options: ShapeOptions): ProtoShape {
  const shape: ProtoShape = new Map();
  for (const pkg of packages) {
    const ns = root.lookup(pkg);
    if (!(ns instanceof protobuf.Namespace)) throw new Error(`no package ${pkg}`);
    addNamespace(shape, ns, options);
  }
  return shape;
}

export interface ShapeDiff { // each sorted
  readonly missing: string[]; // in the reference, not in ours
  readonly different: string[]; // in both, described differently ("key: reference | ours")
  readonly extra: string[]; // full names of elements only ours has, whose parent the reference has too
}

function parentName(key: string): string {
  const name = key.slice(key.indexOf(' ') + 1);
  return name.slice(0, name.lastIndexOf('.'));
}

/** What ours lacks, changes or adds relative to the reference. */
export function compareShapes(reference: ProtoShape, ours: ProtoShape): ShapeDiff {
  const missing: string[] = [];
  const different: string[] = [];
  for (const [key, want] of reference) {
    const got = ours.get(key);
    if (got === undefined) missing.push(key);
    else if (got !== want) different.push(`${key}: ${want} | ${got}`);
  }
  const extraKeys = [...ours.keys()].filter((k) => !reference.has(k));
  const extraNames = new Set(extraKeys.map((k) => k.slice(k.indexOf(' ') + 1)));
  // An element inside an extra one (a field of an added message, a value of its enum) is covered by it.
  const extra = extraKeys.filter((k) => !extraNames.has(parentName(k))).map((k) => k.slice(k.indexOf(' ') + 1));
  return { missing: missing.sort(), different: different.sort(), extra: [...new Set(extra)].sort() };
}
