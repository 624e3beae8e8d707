// The strict wire check (src/protocol/strict-wire.ts) on its own: every encoding protobufjs writes passes; each
// kind of malformation is named; packed fields, maps, UTF-8 and nesting depth follow proto3's rules.
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { MAX_NESTING_DEPTH, wireProblem } from '../../src/protocol/strict-wire.js';

const root = protobuf.parse(`
syntax = "proto3";
package t;
enum Color { RED = 0; BLUE = 1; }
message Inner { string name = 1; bytes data = 2; }
message Outer {
  uint64 id = 1;
  repeated uint32 nums = 2;
  repeated fixed64 fixed = 3;
  map<string, Inner> byName = 4;
  Inner inner = 5;
  Color color = 6;
  double ratio = 7;
  sfixed32 small = 8;
  repeated Inner many = 9;
}
message Nest { Nest child = 1; }
`).root;
root.resolveAll();
const Outer = root.lookupType('t.Outer');
const Nest = root.lookupType('t.Nest');

describe('wireProblem', () => {
  it('passes what protobufjs encodes (packed, unpacked, maps, enums, fixed, nested)', () => {
    const value = {
      id: 12345678901,
      nums: [1, 300, 70000],
      fixed: [1, 2],
      byName: { a: { name: 'x', data: Buffer.from([0xff, 0x00]) }, 'é': { name: 'ü' } },
      inner: { name: 'hello' },
      color: 1,
      ratio: 0.5,
      small: -3,
      many: [{ name: 'a' }, {}],
    };
    const bytes = Outer.encode(Outer.fromObject(value)).finish();
    expect(wireProblem(Outer, bytes)).toBeUndefined();
    expect(wireProblem(Outer, new Uint8Array(0))).toBeUndefined(); // all defaults
    // unpacked repeated scalars (what a proto2-style writer sends) are fine too
    expect(wireProblem(Outer, Uint8Array.from([0x10, 0x01, 0x10, 0x02]))).toBeUndefined();
    // unknown fields with valid wire types are skipped
    expect(wireProblem(Outer, Uint8Array.from([0xf8, 0x01, 0x05, 0xfa, 0x01, 0x01, 0x00]))).toBeUndefined();
  });

  const bad: [string, number[], RegExp][] = [
    ['a varint field on fixed32', [0x0d, 1, 0, 0, 0], /t\.Outer\.id \(uint64\) arrived on wire type 5/],
    ['a varint field length-delimited', [0x0a, 0x01, 0x01], /t\.Outer\.id \(uint64\) arrived length-delimited/],
    ['a message on a varint', [0x28, 0x01], /t\.Outer\.inner \(Inner\) arrived on wire type 0/],
    ['a truncated varint', [0x08, 0x80], /truncated varint/],
    ['an 11-byte varint', [0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], /longer than 10 bytes/],
    ['a length past the end', [0x2a, 0x05, 0x0a], /overrun the message/],
    ['a group', [0x0b], /wire type 3 is not valid/],
    ['wire type 7', [0x0f], /wire type 7 is not valid/],
    ['field number 0', [0x00, 0x00], /field number 0/],
    ['invalid UTF-8 in a nested string', [0x2a, 0x03, 0x0a, 0x01, 0xff], /t\.Inner\.name \(string\) is not valid UTF-8/],
    ['a packed fixed64 of 12 bytes', [0x1a, 0x0c, ...new Array<number>(12).fill(0)], /no whole number of 8-byte elements/],
    ['a packed varint truncated', [0x12, 0x01, 0x80], /truncated varint/],
    ['a map value that is no message', [0x22, 0x04, 0x0a, 0x00, 0x10, 0x01], /map value \(Inner\) arrived on wire type 0/],
    ['a double on a varint', [0x38, 0x01], /t\.Outer\.ratio \(double\) arrived on wire type 0/],
    ['trailing garbage', [0x08, 0x01, 0xff], /truncated varint/],
  ];
  for (const [name, bytes, reason] of bad) {
    it(`refuses ${name}`, () => {
      expect(wireProblem(Outer, Uint8Array.from(bytes))).toMatch(reason);
    });
  }

  it(`refuses nesting deeper than ${MAX_NESTING_DEPTH} messages, accepts it at the limit`, () => {
    const nested = (depth: number): Uint8Array => {
      let inner = Buffer.alloc(0);
      for (let i = 0; i < depth; i++) {
        const w = protobuf.Writer.create();
        w.uint32(0x0a).bytes(inner);
        inner = Buffer.from(w.finish());
      }
      return inner;
    };
    expect(wireProblem(Nest, nested(MAX_NESTING_DEPTH))).toBeUndefined();
    expect(wireProblem(Nest, nested(MAX_NESTING_DEPTH + 2))).toMatch(/nested deeper than/);
  });
});
