/**
 * A small WebAssembly binary writer: just what the translator emits (i32/i64
 * and f32/f64 arithmetic, memory access, structured control flow, calls to
 * imported and internal helpers, indirect calls through a shared table).
 * Encodings from the WebAssembly core specification, section 5 (binary format).
 *
 * Bytes go into growable typed arrays, not JavaScript arrays: a boot translates
 * millions of bytes, and arrays of numbers made a fifth of the translator's
 * time garbage collection.
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

/** Vector instructions (prefix 0xfd; core spec 5.4.8, relaxed SIMD for relaxed_madd). */
export const SIMD = { f64x2_splat: 0x14, f64x2_extract_lane: 0x21, f64x2_relaxed_madd: 0x107 } as const;

/**
 * Atomic memory instructions (prefix 0xfe; the threads proposal, "Atomic Memory
 * Accesses"): each takes a memarg whose alignment must be the access's natural one.
 */
export const ATOMIC = {
  i32_load: 0x10, i64_load: 0x11,
  i32_rmw_add: 0x1e, i64_rmw_add: 0x1f, i32_rmw_and: 0x2c, i64_rmw_and: 0x2d,
  i32_rmw_or: 0x33, i64_rmw_or: 0x34, i32_rmw_xor: 0x3a, i64_rmw_xor: 0x3b,
  i32_rmw_xchg: 0x41, i64_rmw_xchg: 0x42, i32_rmw_cmpxchg: 0x48, i64_rmw_cmpxchg: 0x49,
} as const;

/** Block type "no result" (core spec 5.4.1). */
const BLOCK_VOID = 0x40;

/** A growable byte buffer with the LEB128 encodings of the binary format (core spec 5.2.2). */
export class ByteWriter {
  buf: Uint8Array;
  len = 0;

  constructor(capacity = 1024) {
    this.buf = new Uint8Array(capacity);
  }

  protected grow(need: number): void {
    let cap = this.buf.length * 2;
    while (cap < this.len + need) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
  }

  byte(b: number): void {
    if (this.len >= this.buf.length) this.grow(1);
    this.buf[this.len++] = b;
  }

  bytes(src: Uint8Array): void {
    if (this.len + src.length > this.buf.length) this.grow(src.length);
    this.buf.set(src, this.len);
    this.len += src.length;
  }

  uleb(v: number): void {
    if (this.len + 5 > this.buf.length) this.grow(5);
    const b = this.buf;
    do {
      let x = v & 0x7f;
      v = Math.floor(v / 128);
      if (v !== 0) x |= 0x80;
      b[this.len++] = x;
    } while (v !== 0);
  }

  sleb32(v: number): void {
    if (this.len + 5 > this.buf.length) this.grow(5);
    const b = this.buf;
    v |= 0;
    for (;;) {
      const x = v & 0x7f;
      v >>= 7;
      if ((v === 0 && (x & 0x40) === 0) || (v === -1 && (x & 0x40) !== 0)) {
        b[this.len++] = x;
        return;
      }
      b[this.len++] = x | 0x80;
    }
  }

  /** Signed LEB128 of the 64-bit value hi:lo (two's complement), without BigInt. */
  sleb64(lo: number, hi: number): void {
    if (this.len + 10 > this.buf.length) this.grow(10);
    const b = this.buf;
    lo >>>= 0;
    hi |= 0;
    for (;;) {
      const x = lo & 0x7f;
      // Arithmetic shift right by 7 of the 64-bit pair.
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>= 7;
      const signBit = x & 0x40;
      if ((hi === 0 && lo === 0 && signBit === 0) || (hi === -1 && lo === 0xffffffff && signBit !== 0)) {
        b[this.len++] = x;
        return;
      }
      b[this.len++] = x | 0x80;
    }
  }

  name(s: string): void {
    this.uleb(s.length);
    for (let i = 0; i < s.length; i++) this.byte(s.charCodeAt(i));
  }

  /** The bytes written so far (a view). */
  view(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

/** A label of structured control flow; `br` targets it by identity, the depth is computed. */
export type Label = number;

const F64_SCRATCH = new Float64Array(1);
const F64_BYTES = new Uint8Array(F64_SCRATCH.buffer);

/**
 * A branch hint (the branch hinting proposal's `metadata.code.branch_hint`
 * custom section): V8's optimising compiler places the unlikely side out of
 * line, so the likely path is straight and dense in the instruction cache.
 */
export const HINT_UNLIKELY = 0;
export const HINT_LIKELY = 1;
export type BranchHint = typeof HINT_UNLIKELY | typeof HINT_LIKELY;

/** The body of one function. */
export class FunctionBody extends ByteWriter {
  /** Open labels, innermost last. */
  private labels = new Int32Array(64);
  private depthNow = 0;
  private nextLabel = 0;
  private readonly localTypes: ValType[] = [];
  /** Branch hints: pairs of (offset of the `if`/`br_if` in the body, HINT_*). */
  readonly hints: number[] = [];

  constructor(readonly params: readonly ValType[], capacity = 2048) {
    super(capacity);
  }

  /** A new local of type t; returns its index. */
  local(t: ValType): number {
    this.localTypes.push(t);
    return this.params.length + this.localTypes.length - 1;
  }

  op(o: number): this {
    this.byte(o);
    return this;
  }

  /** An atomic access of natural alignment log2 `align`, at the address on the stack plus `offset`. */
  atomic(o: number, align: number, offset = 0): this {
    this.byte(0xfe);
    this.uleb(o);
    this.uleb(align);
    this.uleb(offset);
    return this;
  }

  /** A vector instruction; `lane` for the lane-indexed ones. */
  simd(o: number, lane?: number): this {
    this.byte(0xfd);
    this.uleb(o);
    if (lane !== undefined) this.byte(lane);
    return this;
  }

  f64(v: number): this {
    this.byte(OP.f64_const);
    F64_SCRATCH[0] = v;
    this.bytes(F64_BYTES);
    return this;
  }

  i32(v: number): this {
    this.byte(OP.i32_const);
    this.sleb32(v);
    return this;
  }

  i64(lo: number, hi: number): this {
    this.byte(OP.i64_const);
    this.sleb64(lo, hi);
    return this;
  }

  get(l: number): this {
    this.byte(OP.local_get);
    this.uleb(l);
    return this;
  }

  set(l: number): this {
    this.byte(OP.local_set);
    this.uleb(l);
    return this;
  }

  tee(l: number): this {
    this.byte(OP.local_tee);
    this.uleb(l);
    return this;
  }

  /** A memory access with natural alignment log2 `align` and a constant offset. */
  mem(o: number, align: number, offset = 0): this {
    this.byte(o);
    this.uleb(align);
    this.uleb(offset);
    return this;
  }

  call(fn: number): this {
    this.byte(OP.call);
    this.uleb(fn);
    return this;
  }

  callIndirect(type: number, table = 0): this {
    this.byte(OP.call_indirect);
    this.uleb(type);
    this.uleb(table);
    return this;
  }

  block(): Label {
    this.byte(OP.block);
    this.byte(BLOCK_VOID);
    return this.push();
  }

  loop(): Label {
    this.byte(OP.loop);
    this.byte(BLOCK_VOID);
    return this.push();
  }

  /** `if` without result (or with one value of type `t`); close with end(). `hint`: how likely the condition is. */
  if_(t?: ValType, hint?: BranchHint): Label {
    if (hint !== undefined) this.hints.push(this.len, hint);
    this.byte(OP.if);
    this.byte(t ?? BLOCK_VOID);
    return this.push();
  }

  else_(): this {
    this.byte(OP.else);
    return this;
  }

  end(): this {
    if (this.depthNow === 0) throw new Error('end without an open block');
    this.depthNow--;
    this.byte(OP.end);
    return this;
  }

  private push(): Label {
    if (this.depthNow >= this.labels.length) {
      const l = new Int32Array(this.labels.length * 2);
      l.set(this.labels);
      this.labels = l;
    }
    const id = this.nextLabel++;
    this.labels[this.depthNow++] = id;
    return id;
  }

  private depth(l: Label): number {
    for (let i = this.depthNow - 1; i >= 0; i--) if (this.labels[i] === l) return this.depthNow - 1 - i;
    throw new Error('branch to a label that is not open');
  }

  br(l: Label): this {
    this.byte(OP.br);
    this.uleb(this.depth(l));
    return this;
  }

  brIf(l: Label, hint?: BranchHint): this {
    if (hint !== undefined) this.hints.push(this.len, hint);
    this.byte(OP.br_if);
    this.uleb(this.depth(l));
    return this;
  }

  brTable(targets: readonly Label[], dflt: Label): this {
    this.byte(OP.br_table);
    this.uleb(targets.length);
    for (const t of targets) this.uleb(this.depth(t));
    this.uleb(this.depth(dflt));
    return this;
  }

  /** Writes the locals declaration that precedes the body in the code entry. */
  encodeLocals(out: ByteWriter): void {
    if (this.depthNow !== 0) throw new Error('unclosed blocks');
    // Locals, run-length grouped by type.
    let groups = 0;
    for (let i = 0; i < this.localTypes.length; i++) if (i === 0 || this.localTypes[i] !== this.localTypes[i - 1]) groups++;
    out.uleb(groups);
    let i = 0;
    while (i < this.localTypes.length) {
      const t = this.localTypes[i]!;
      let n = 1;
      while (i + n < this.localTypes.length && this.localTypes[i + n] === t) n++;
      out.uleb(n);
      out.byte(t);
      i += n;
    }
  }
}

export interface FuncType { readonly params: readonly ValType[]; readonly results: readonly ValType[] }

export interface ModuleFunction {
  readonly type: number;
  readonly body: FunctionBody;
  /** Exported under this name (else internal). */
  readonly export?: string;
}

export interface ModuleSpec {
  readonly types: readonly FuncType[];
  /** Imported functions "h"."<name>" with their type index, in function-index order. */
  readonly importFuncs: readonly { readonly name: string; readonly type: number }[];
  /** Functions defined by the module, indexed from importFuncs.length on. */
  readonly funcs: readonly ModuleFunction[];
  /**
   * Import a function table "m".<importTable> too (table 0). V8 keeps a dispatch
   * table per instance that imports a table and updates them all on every
   * Table.set/grow: a table that changes should be imported by one module only.
   */
  readonly importTable?: string;
}

/** The writer modules are built in (one thread builds one module at a time). */
const moduleOut = new ByteWriter(1 << 16);
const sectionOut = new ByteWriter(1 << 12);

function section(out: ByteWriter, id: number, content: ByteWriter): void {
  out.byte(id);
  out.uleb(content.len);
  out.bytes(content.view());
  content.len = 0;
}

/**
 * A module importing "m"."mem" (the shared machine memory, up to 4 GiB),
 * optionally "m"."tab" (the shared function table) and helper functions,
 * defining `funcs`.
 */
export function encodeModule(spec: ModuleSpec): Uint8Array {
  const out = moduleOut;
  const s = sectionOut;
  out.len = 0;
  s.len = 0;
  out.bytes(MAGIC);

  s.uleb(spec.types.length);
  for (const t of spec.types) {
    s.byte(0x60);
    s.uleb(t.params.length);
    for (const p of t.params) s.byte(p);
    s.uleb(t.results.length);
    for (const r of t.results) s.byte(r);
  }
  section(out, 1, s);

  const withTable = spec.importTable !== undefined;
  s.uleb((withTable ? 2 : 1) + spec.importFuncs.length);
  s.name('m');
  s.name('mem');
  s.byte(0x02);
  s.byte(0x03); // memory, limits: shared with min and max
  s.uleb(0);
  s.uleb(65536);
  if (withTable) {
    s.name('m');
    s.name(spec.importTable!);
    s.byte(0x01);
    s.byte(0x70);
    s.byte(0x00); // table of funcref, min only
    s.uleb(0);
  }
  for (const f of spec.importFuncs) {
    s.name('h');
    s.name(f.name);
    s.byte(0x00);
    s.uleb(f.type);
  }
  section(out, 2, s);

  s.uleb(spec.funcs.length);
  for (const f of spec.funcs) s.uleb(f.type);
  section(out, 3, s);

  let exported = 0;
  for (const f of spec.funcs) if (f.export !== undefined) exported++;
  s.uleb(exported);
  spec.funcs.forEach((f, i) => {
    if (f.export === undefined) return;
    s.name(f.export);
    s.byte(0x00);
    s.uleb(spec.importFuncs.length + i);
  });
  section(out, 7, s);

  // The code section is most of the bytes: its size first, then the bodies straight into the output.
  const heads: Uint8Array[] = [];
  const localsLen: number[] = [];
  const locals = new ByteWriter(32);
  const head = new ByteWriter(8);
  let codeLen = 0;
  for (const f of spec.funcs) {
    locals.len = 0;
    f.body.encodeLocals(locals);
    localsLen.push(locals.len);
    head.len = 0;
    head.uleb(locals.len + f.body.len + 1);
    const h = new Uint8Array(head.len + locals.len);
    h.set(head.view(), 0);
    h.set(locals.view(), head.len);
    heads.push(h);
    codeLen += h.length + f.body.len + 1;
  }
  // Branch hints go before the code section; an offset counts from the start of the body's locals.
  let hinted = 0;
  for (const f of spec.funcs) if (f.body.hints.length > 0) hinted++;
  if (hinted > 0) {
    s.name('metadata.code.branch_hint');
    s.uleb(hinted);
    spec.funcs.forEach((f, i) => {
      const h = f.body.hints;
      if (h.length === 0) return;
      s.uleb(spec.importFuncs.length + i);
      s.uleb(h.length / 2);
      for (let k = 0; k < h.length; k += 2) {
        s.uleb(localsLen[i]! + h[k]!);
        s.uleb(1);
        s.byte(h[k + 1]!);
      }
    });
    section(out, 0, s);
  }
  s.uleb(spec.funcs.length);
  codeLen += s.len;
  out.byte(10);
  out.uleb(codeLen);
  out.bytes(s.view());
  s.len = 0;
  spec.funcs.forEach((f, i) => {
    out.bytes(heads[i]!);
    out.bytes(f.body.view());
    out.byte(OP.end);
  });
  return out.view().slice();
}

const MAGIC = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
