// The Wasm encoder's branch hints: the custom section must name each hinted
// `if`/`br_if` by its offset from the start of the function body (its locals
// declaration), in the function index space after the imports, or V8 ignores it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeModule, FunctionBody, HINT_LIKELY, HINT_UNLIKELY, I32, OP } from '../src/jit/wasm.js';

/** Unsigned LEB128 at `at`: [value, next offset]. */
function uleb(b: Uint8Array, at: number): [number, number] {
  let v = 0;
  let shift = 0;
  for (;;) {
    const x = b[at++]!;
    v += (x & 0x7f) * 2 ** shift;
    shift += 7;
    if ((x & 0x80) === 0) return [v, at];
  }
}

/** Sections of a module: id, name (custom), payload start and end. */
function sections(b: Uint8Array): { id: number; name: string; start: number; end: number }[] {
  const out: { id: number; name: string; start: number; end: number }[] = [];
  let at = 8;
  while (at < b.length) {
    const id = b[at++]!;
    const [len, p] = uleb(b, at);
    let start = p;
    let name = '';
    if (id === 0) {
      const [n, q] = uleb(b, p);
      name = new TextDecoder().decode(b.subarray(q, q + n));
      start = q + n;
    }
    out.push({ id, name, start, end: p + len });
    at = p + len;
  }
  return out;
}

function hintedModule(): Uint8Array {
  // f0 has no hints; f1 (x) => x < 10 ? 1 : (x == 42 ? 2 : 3), its if unlikely and its br_if likely.
  const plain = new FunctionBody([I32]);
  plain.get(0);
  const f = new FunctionBody([I32]);
  const scratch = f.local(I32);
  f.get(0).i32(10).op(OP.i32_lt_s).if_(undefined, HINT_UNLIKELY);
  f.i32(1).op(OP.return);
  f.end();
  const out = f.block();
  f.i32(2).set(scratch);
  f.get(0).i32(42).op(OP.i32_eq).brIf(out, HINT_LIKELY);
  f.i32(3).set(scratch);
  f.end();
  f.get(scratch);
  return encodeModule({
    types: [{ params: [I32], results: [I32] }],
    importFuncs: [{ name: 'imp', type: 0 }],
    funcs: [{ type: 0, body: plain, export: 'plain' }, { type: 0, body: f, export: 'f' }],
  });
}

test('branch hints name the hinted if and br_if, before the code section, and leave the code as it was', () => {
  const bytes = hintedModule();
  const secs = sections(bytes);
  const hint = secs.findIndex((s) => s.id === 0 && s.name === 'metadata.code.branch_hint');
  const code = secs.findIndex((s) => s.id === 10);
  assert.ok(hint >= 0 && hint < code, 'hint section before the code section');

  // The code entries: [size, body...] per function.
  const bodies: Uint8Array[] = [];
  let [n, at] = uleb(bytes, secs[code]!.start);
  for (; n > 0; n--) {
    const [size, p] = uleb(bytes, at);
    bodies.push(bytes.subarray(p, p + size));
    at = p + size;
  }
  let [funcs, q] = uleb(bytes, secs[hint]!.start);
  assert.equal(funcs, 1);
  let idx: number;
  [idx, q] = uleb(bytes, q);
  assert.equal(idx, 2, 'the function index counts the import');
  let count: number;
  [count, q] = uleb(bytes, q);
  const seen: [number, number][] = [];
  for (; count > 0; count--) {
    let off: number, len: number;
    [off, q] = uleb(bytes, q);
    [len, q] = uleb(bytes, q);
    assert.equal(len, 1);
    seen.push([bodies[1]![off]!, bytes[q++]!]);
  }
  assert.equal(q, secs[hint]!.end);
  assert.deepEqual(seen, [[OP.if, HINT_UNLIKELY], [OP.br_if, HINT_LIKELY]]);

  const mem = new WebAssembly.Memory({ initial: 0, maximum: 65536, shared: true });
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { m: { mem }, h: { imp: (x: number) => x } });
  const fn = instance.exports.f as (x: number) => number;
  assert.deepEqual([fn(3), fn(42), fn(50)], [1, 2, 3]);
  assert.equal((instance.exports.plain as (x: number) => number)(7), 7);
});
