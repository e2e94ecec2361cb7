/**
 * A small WebAssembly binary writer: just what the translator emits (one
 * function per module, i32/i64 arithmetic, memory access, structured control
 * flow, calls to imported helpers and tail calls through a shared table).
 * Encodings from the WebAssembly core specification, section 5 (binary format).
 */

export const I32 = 0x7f;
export const I64 = 0x7e;
export const F32 = 0x7d;
export const F64 = 0x7c;
export type ValType = typeof I32 | typeof I64 | typeof F32 | typeof F64;

/** Opcodes used by the translator (core spec 5.4). */
export const OP = {
  unreachable: 0x00, block: 0x02, loop: 0x03, if: 0x04, else: 0x05, end: 0x0b,
  br: 0x0c, br_if: 0x0d, br_table: 0x0e, return: 0x0f, call: 0x10, call_indirect: 0x11,
  drop: 0x1a, select: 0x1b,
  local_get: 0x20, local_set: 0x21, local_tee: 0x22,
  i32_load: 0x28, i64_load: 0x29,
  i32_load8_s: 0x2c, i32_load8_u: 0x2d, i32_load16_s: 0x2e, i32_load16_u: 0x2f,
  i64_load8_s: 0x30, i64_load8_u: 0x31, i64_load16_s: 0x32, i64_load16_u: 0x33, i64_load32_s: 0x34, i64_load32_u: 0x35,
  i32_store: 0x36, i64_store: 0x37, i32_store8: 0x3a, i32_store16: 0x3b,
  i64_store8: 0x3c, i64_store16: 0x3d, i64_store32: 0x3e,
  i32_const: 0x41, i64_const: 0x42,
  i32_eqz: 0x45, i32_eq: 0x46, i32_ne: 0x47, i32_lt_s: 0x48, i32_lt_u: 0x49, i32_gt_s: 0x4a, i32_gt_u: 0x4b,
  i32_le_s: 0x4c, i32_le_u: 0x4d, i32_ge_s: 0x4e, i32_ge_u: 0x4f,
  i64_eqz: 0x50, i64_eq: 0x51, i64_ne: 0x52, i64_lt_s: 0x53, i64_lt_u: 0x54, i64_gt_s: 0x55, i64_gt_u: 0x56,
  i64_le_s: 0x57, i64_le_u: 0x58, i64_ge_s: 0x59, i64_ge_u: 0x5a,
  i32_add: 0x6a, i32_sub: 0x6b, i32_mul: 0x6c, i32_div_s: 0x6d, i32_div_u: 0x6e, i32_rem_s: 0x6f, i32_rem_u: 0x70, i32_and: 0x71, i32_or: 0x72, i32_xor: 0x73,
  i32_shl: 0x74, i32_shr_s: 0x75, i32_shr_u: 0x76,
  i64_add: 0x7c, i64_sub: 0x7d, i64_mul: 0x7e, i64_div_s: 0x7f, i64_div_u: 0x80, i64_rem_s: 0x81, i64_rem_u: 0x82,
  i64_and: 0x83, i64_or: 0x84, i64_xor: 0x85, i64_shl: 0x86, i64_shr_s: 0x87, i64_shr_u: 0x88,
  i32_wrap_i64: 0xa7, i64_extend_i32_s: 0xac, i64_extend_i32_u: 0xad,
  i32_extend8_s: 0xc0, i32_extend16_s: 0xc1,
  f32_load: 0x2a, f64_load: 0x2b, f32_store: 0x38, f64_store: 0x39, f64_const: 0x44,
  f32_eq: 0x5b, f32_lt: 0x5d, f32_ge: 0x60,
  f64_eq: 0x61, f64_ne: 0x62, f64_lt: 0x63, f64_gt: 0x64, f64_le: 0x65, f64_ge: 0x66,
  f32_abs: 0x8b, f32_neg: 0x8c, f32_sqrt: 0x91, f32_add: 0x92, f32_sub: 0x93, f32_mul: 0x94, f32_div: 0x95,
  f64_abs: 0x99, f64_neg: 0x9a, f64_sqrt: 0x9f, f64_add: 0xa0, f64_sub: 0xa1, f64_mul: 0xa2, f64_div: 0xa3,
  f32_convert_i32_s: 0xb2, f32_convert_i32_u: 0xb3, f32_convert_i64_s: 0xb4, f32_convert_i64_u: 0xb5,
  f64_convert_i32_s: 0xb7, f64_convert_i32_u: 0xb8, f64_convert_i64_s: 0xb9, f64_convert_i64_u: 0xba,
  f32_demote_f64: 0xb6, f64_promote_f32: 0xbb,
  i32_reinterpret_f32: 0xbc, i64_reinterpret_f64: 0xbd, f32_reinterpret_i32: 0xbe, f64_reinterpret_i64: 0xbf,
} as const;

/** Block type "no result" (core spec 5.4.1). */
const BLOCK_VOID = 0x40;

function uleb(out: number[], v: number): void {
  do {
    let b = v & 0x7f;
    v = Math.floor(v / 128);
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
}

function sleb32(out: number[], v: number): void {
  v |= 0;
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return;
    }
    out.push(b | 0x80);
  }
}

/** Signed LEB128 of the 64-bit value hi:lo (two's complement), without BigInt. */
function sleb64(out: number[], lo: number, hi: number): void {
  lo >>>= 0;
  hi |= 0;
  for (;;) {
    const b = lo & 0x7f;
    // Arithmetic shift right by 7 of the 64-bit pair.
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>= 7;
    const signBit = b & 0x40;
    if ((hi === 0 && lo === 0 && signBit === 0) || (hi === -1 && lo === 0xffffffff && signBit !== 0)) {
      out.push(b);
      return;
    }
    out.push(b | 0x80);
  }
}

/** A label of structured control flow; `br` targets it by identity, the depth is computed. */
export interface Label { readonly id: number }

/** The body of one function. */
export class FunctionBody {
  readonly code: number[] = [];
  private readonly labels: Label[] = [];
  private nextLabel = 0;
  private readonly localTypes: ValType[] = [];

  constructor(readonly params: readonly ValType[]) {}

  /** A new local of type t; returns its index. */
  local(t: ValType): number {
    this.localTypes.push(t);
    return this.params.length + this.localTypes.length - 1;
  }

  op(o: number): this {
    this.code.push(o);
    return this;
  }

  f64(v: number): this {
    this.code.push(OP.f64_const);
    const b = new Uint8Array(new Float64Array([v]).buffer);
    for (const x of b) this.code.push(x);
    return this;
  }

  i32(v: number): this {
    this.code.push(OP.i32_const);
    sleb32(this.code, v);
    return this;
  }

  i64(lo: number, hi: number): this {
    this.code.push(OP.i64_const);
    sleb64(this.code, lo, hi);
    return this;
  }

  get(l: number): this {
    this.code.push(OP.local_get);
    uleb(this.code, l);
    return this;
  }

  set(l: number): this {
    this.code.push(OP.local_set);
    uleb(this.code, l);
    return this;
  }

  tee(l: number): this {
    this.code.push(OP.local_tee);
    uleb(this.code, l);
    return this;
  }

  /** A memory access with natural alignment log2 `align` and a constant offset. */
  mem(o: number, align: number, offset = 0): this {
    this.code.push(o);
    uleb(this.code, align);
    uleb(this.code, offset);
    return this;
  }

  call(fn: number): this {
    this.code.push(OP.call);
    uleb(this.code, fn);
    return this;
  }

  callIndirect(type: number, table = 0): this {
    this.code.push(OP.call_indirect);
    uleb(this.code, type);
    uleb(this.code, table);
    return this;
  }

  block(): Label {
    this.code.push(OP.block, BLOCK_VOID);
    return this.push();
  }

  loop(): Label {
    this.code.push(OP.loop, BLOCK_VOID);
    return this.push();
  }

  /** `if` without result; close with end(). */
  if_(): Label {
    this.code.push(OP.if, BLOCK_VOID);
    return this.push();
  }

  else_(): this {
    this.code.push(OP.else);
    return this;
  }

  end(): this {
    this.labels.pop();
    this.code.push(OP.end);
    return this;
  }

  private push(): Label {
    const l = { id: this.nextLabel++ };
    this.labels.push(l);
    return l;
  }

  private depth(l: Label): number {
    const i = this.labels.lastIndexOf(l);
    if (i < 0) throw new Error('branch to a label that is not open');
    return this.labels.length - 1 - i;
  }

  br(l: Label): this {
    this.code.push(OP.br);
    uleb(this.code, this.depth(l));
    return this;
  }

  brTable(targets: readonly Label[], dflt: Label): this {
    this.code.push(OP.br_table);
    uleb(this.code, targets.length);
    for (const t of targets) uleb(this.code, this.depth(t));
    uleb(this.code, this.depth(dflt));
    return this;
  }

  /** The locals declaration that precedes the body in the code entry. */
  encodeLocals(): number[] {
    if (this.labels.length !== 0) throw new Error('unclosed blocks');
    const out: number[] = [];
    // Locals, run-length grouped by type.
    const groups: [number, ValType][] = [];
    for (const t of this.localTypes) {
      const last = groups[groups.length - 1];
      if (last && last[1] === t) last[0]++;
      else groups.push([1, t]);
    }
    uleb(out, groups.length);
    for (const [n, t] of groups) {
      uleb(out, n);
      out.push(t);
    }
    return out;
  }
}

export interface FuncType { readonly params: readonly ValType[]; readonly results: readonly ValType[] }

export interface ModuleSpec {
  readonly types: readonly FuncType[];
  /** Imported functions "h"."<name>" with their type index, in function-index order. */
  readonly importFuncs: readonly { readonly name: string; readonly type: number }[];
  /** Functions defined by the module (indices from importFuncs.length), exported as "f0", "f1", ... */
  readonly funcType: number;
  readonly bodies: readonly FunctionBody[];
  /**
   * Import "m"."tab" too. V8 keeps a dispatch table per instance that imports a table
   * and updates them all on every Table.set/grow, so only one module should.
   */
  readonly importTable?: boolean;
}

function section(out: number[], id: number, content: number[]): void {
  out.push(id);
  uleb(out, content.length);
  for (const b of content) out.push(b);
}

function name(out: number[], s: string): void {
  uleb(out, s.length);
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i));
}

/**
 * A module importing "m"."mem" (the shared machine memory, up to 4 GiB),
 * optionally "m"."tab" (the shared function table) and helper functions,
 * defining functions exported as "f0", "f1", ...
 */
export function encodeModule(spec: ModuleSpec): Uint8Array {
  const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  const types: number[] = [];
  uleb(types, spec.types.length);
  for (const t of spec.types) {
    types.push(0x60);
    uleb(types, t.params.length);
    for (const p of t.params) types.push(p);
    uleb(types, t.results.length);
    for (const r of t.results) types.push(r);
  }
  section(out, 1, types);

  const imports: number[] = [];
  const withTable = spec.importTable === true;
  uleb(imports, (withTable ? 2 : 1) + spec.importFuncs.length);
  name(imports, 'm');
  name(imports, 'mem');
  imports.push(0x02, 0x03); // memory, limits: shared with min and max
  uleb(imports, 0);
  uleb(imports, 65536);
  if (withTable) {
    name(imports, 'm');
    name(imports, 'tab');
    imports.push(0x01, 0x70, 0x00); // table of funcref, min only
    uleb(imports, 0);
  }
  for (const f of spec.importFuncs) {
    name(imports, 'h');
    name(imports, f.name);
    imports.push(0x00);
    uleb(imports, f.type);
  }
  section(out, 2, imports);

  const n = spec.bodies.length;
  const funcs: number[] = [];
  uleb(funcs, n);
  for (let i = 0; i < n; i++) uleb(funcs, spec.funcType);
  section(out, 3, funcs);

  const exports: number[] = [];
  uleb(exports, n);
  for (let i = 0; i < n; i++) {
    name(exports, `f${i}`);
    exports.push(0x00);
    uleb(exports, spec.importFuncs.length + i);
  }
  section(out, 7, exports);

  // The code section is most of the bytes: copy bodies straight into the result.
  const heads: number[][] = [];
  let codeLen = 0;
  const count: number[] = [];
  uleb(count, n);
  codeLen += count.length;
  for (const f of spec.bodies) {
    const locals = f.encodeLocals();
    const size = locals.length + f.code.length + 1;
    const head: number[] = [];
    uleb(head, size);
    for (const b of locals) head.push(b);
    heads.push(head);
    codeLen += head.length + f.code.length + 1;
  }
  out.push(10);
  uleb(out, codeLen);
  for (const b of count) out.push(b);
  const result = new Uint8Array(out.length + codeLen - count.length);
  result.set(out, 0);
  let p = out.length;
  spec.bodies.forEach((f, i) => {
    const head = heads[i]!;
    result.set(head, p);
    p += head.length;
    result.set(f.code, p);
    p += f.code.length;
    result[p++] = OP.end;
  });
  return result;
}
