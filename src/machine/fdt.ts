/**
 * Flattened devicetree (DTB) writer and reader, written from the Devicetree
 * Specification v0.4: chapter 5 ("Flattened Devicetree (DTB) Format") for the
 * blob, §2.2 for names and value types. Section numbers below are the spec's.
 *
 * encodeFdt checks names strictly (§2.2.1, §2.2.4) and lays the blob out as
 * header, memory reservation block, structure block, strings block (§5.1).
 * decodeFdt is meant for hostile input (a DTB a guest hands us): every offset
 * and length is bounds-checked, each loop step consumes input, nesting is
 * limited, and anything malformed is an FdtError. It accepts names the way
 * real trees spell them (any printable ASCII but "/", up to 255 bytes), since
 * Linux trees exceed the spec's 31 characters; so a decoded tree may not
 * re-encode. Nor does it require zeroed padding (QEMU's virt DTB has stale
 * bytes there). Decoded values are always { kind: 'bytes' }: the blob does not
 * record types; read them with asU32s, asU64s and asStrings.
 */

export class FdtError extends Error {
  override readonly name = 'FdtError';
}

// §5.2 Header
export const FDT_MAGIC = 0xd00dfeed;
const FDT_VERSION = 17;
const FDT_LAST_COMP_VERSION = 16;
const HEADER_SIZE = 40; // ten big-endian u32 fields

// §5.4.1 Lexical structure: the structure block's tokens.
export const FDT_BEGIN_NODE = 0x1;
export const FDT_END_NODE = 0x2;
export const FDT_PROP = 0x3;
export const FDT_NOP = 0x4;
export const FDT_END = 0x9;

/** Most levels of nodes (the root counts as one) that encodeFdt writes and decodeFdt reads. */
export const FDT_MAX_DEPTH = 64;
/** Longest node or property name decodeFdt accepts (encodeFdt holds to the spec's 31). */
const DECODE_MAX_NAME = 255;

/** A property value (§2.2.4, Table 2.3); u64 is two cells, most significant first. */
export type FdtValue =
  | { kind: 'empty' }
  | { kind: 'u32'; values: number[] }
  | { kind: 'u64'; values: bigint[] }
  | { kind: 'string'; values: string[] }
  | { kind: 'bytes'; data: Uint8Array };

/** A node; the root's name is "". Properties keep their order. */
export interface FdtNode {
  name: string;
  props: [string, FdtValue][];
  children: FdtNode[];
}

/** One memory reservation block entry (§5.3). */
export interface FdtReserveEntry {
  address: bigint;
  size: bigint;
}

export interface FdtEncodeOptions {
  /** boot_cpuid_phys (§5.2); 0 unless given. */
  bootCpuId?: number;
  /** Memory reservation block entries (§5.3): nonzero sizes, no overlaps. */
  reserved?: readonly FdtReserveEntry[];
  /** If given, every phandle it handed out must belong to a node of the tree. */
  phandles?: PhandleAllocator;
}

export interface DecodedFdt {
  root: FdtNode;
  bootCpuId: number;
  reserved: FdtReserveEntry[];
  version: number;
}

// ------------------------------------------------------------------ building

export const empty = (): FdtValue => ({ kind: 'empty' });
export const u32 = (...values: number[]): FdtValue => ({ kind: 'u32', values });
export const u64 = (...values: bigint[]): FdtValue => ({ kind: 'u64', values });
export const str = (...values: string[]): FdtValue => ({ kind: 'string', values });
export const bytes = (data: Uint8Array): FdtValue => ({ kind: 'bytes', data });

/**
 * A node. Props as pairs, or as an object for brevity (its keys keep their
 * order unless they look like array indices, e.g. "0": use pairs for those).
 */
export function node(
  name: string,
  props: [string, FdtValue][] | Record<string, FdtValue> = [],
  children: FdtNode[] = [],
): FdtNode {
  return { name, props: Array.isArray(props) ? props : Object.entries(props), children };
}

/**
 * Hands out phandles (§2.3.3) by label, like labels in a .dts: get(label) may
 * come before or after attach(label, node), so nodes can refer to each other
 * in any order, e.g. interrupt-parent = u32(ph.get('plic')).
 */
export class PhandleAllocator {
  private readonly byLabel = new Map<string, number>();
  private next = 1;

  /** The phandle of `label`, allocated (1, 2, 3, ...) on first use. */
  get(label: string): number {
    let v = this.byLabel.get(label);
    if (v === undefined) {
      v = this.next++;
      this.byLabel.set(label, v);
    }
    return v;
  }

  /** Gives `n` the phandle of `label` (a "phandle" property) and returns `n`. */
  attach(label: string, n: FdtNode): FdtNode {
    if (n.props.some(([p]) => p === 'phandle')) throw new FdtError(`node ${JSON.stringify(n.name)} already has a phandle`);
    n.props.push(['phandle', u32(this.get(label))]);
    return n;
  }

  /** Every label handed out so far, with its phandle. */
  get labels(): ReadonlyMap<string, number> {
    return this.byLabel;
  }
}

// ------------------------------------------------------------------ reading

export function getProp(n: FdtNode, name: string): FdtValue | undefined {
  return n.props.find(([p]) => p === name)?.[1];
}

/**
 * The node at `path` ("/", "/cpus/cpu@0"). A component without a unit address
 * also matches a child "name@unit" if it is the only such child (§2.2.3).
 */
export function findNode(root: FdtNode, path: string): FdtNode | undefined {
  if (!path.startsWith('/')) return undefined;
  let n: FdtNode | undefined = root;
  for (const part of path.split('/').filter((s) => s !== '')) {
    const exact: FdtNode | undefined = n.children.find((c) => c.name === part);
    if (exact) {
      n = exact;
      continue;
    }
    if (part.includes('@')) return undefined;
    const loose: FdtNode[] = n.children.filter((c) => c.name.split('@')[0] === part);
    if (loose.length !== 1) return undefined;
    n = loose[0];
    if (n === undefined) return undefined;
  }
  return n;
}

/** The value's cells as <u32> (§2.2.4); its length must be a multiple of 4. */
export function asU32s(v: FdtValue): number[] {
  const b = fdtValueBytes(v);
  if (b.length % 4 !== 0) throw new FdtError(`value of ${b.length} bytes is not a list of u32 cells`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return Array.from({ length: b.length / 4 }, (_, i) => dv.getUint32(4 * i));
}

/** The value as <u64> numbers (two cells each); its length must be a multiple of 8. */
export function asU64s(v: FdtValue): bigint[] {
  const b = fdtValueBytes(v);
  if (b.length % 8 !== 0) throw new FdtError(`value of ${b.length} bytes is not a list of u64 values`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return Array.from({ length: b.length / 8 }, (_, i) => dv.getBigUint64(8 * i));
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

/** The value as a <stringlist>: one or more NUL-terminated UTF-8 strings. */
export function asStrings(v: FdtValue): string[] {
  const b = fdtValueBytes(v);
  if (b.length === 0 || b[b.length - 1] !== 0) throw new FdtError('value is not a NUL-terminated string list');
  let text: string;
  try {
    text = utf8.decode(b.subarray(0, b.length - 1));
  } catch {
    throw new FdtError('string value is not valid UTF-8');
  }
  return text.split('\0');
}

// ------------------------------------------------------------------ values and names

/** The bytes of a property value (§2.2.4, Table 2.3); throws FdtError on values out of range. */
export function fdtValueBytes(v: FdtValue): Uint8Array {
  switch (v.kind) {
    case 'empty':
      return new Uint8Array(0);
    case 'bytes':
      return v.data;
    case 'u32': {
      const out = new Uint8Array(4 * v.values.length);
      const dv = new DataView(out.buffer);
      v.values.forEach((x, i) => {
        if (!Number.isInteger(x) || x < 0 || x > 0xffffffff) throw new FdtError(`u32 value ${String(x)} out of range`);
        dv.setUint32(4 * i, x);
      });
      return out;
    }
    case 'u64': {
      const out = new Uint8Array(8 * v.values.length);
      const dv = new DataView(out.buffer);
      v.values.forEach((x, i) => {
        if (typeof x !== 'bigint' || x < 0n || x > 0xffffffffffffffffn) throw new FdtError(`u64 value ${String(x)} out of range`);
        dv.setBigUint64(8 * i, x);
      });
      return out;
    }
    case 'string': {
      if (v.values.length === 0) throw new FdtError('string list has no strings');
      const parts = v.values.map((s) => {
        if (s.includes('\0')) throw new FdtError(`string ${JSON.stringify(s)} contains NUL`);
        return utf8Encoder.encode(`${s}\0`);
      });
      const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        out.set(p, at);
        at += p.length;
      }
      return out;
    }
  }
}

const NODE_NAME_CHARS = /^[0-9a-zA-Z,._+-]+$/; // §2.2.1, Table 2.1
const PROP_NAME_CHARS = /^[0-9a-zA-Z,._+?#-]+$/; // §2.2.4, Table 2.2

/** §2.2.1: node-name[@unit-address]; node-name 1-31 characters starting with a letter. */
function checkNodeName(name: string, where: string): void {
  const at = name.indexOf('@');
  const base = at < 0 ? name : name.slice(0, at);
  const bad = (why: string): FdtError => new FdtError(`${where}: node name ${JSON.stringify(name)} ${why}`);
  if (base.length < 1 || base.length > 31) throw bad('must have a node-name of 1 to 31 characters');
  if (!NODE_NAME_CHARS.test(base) || !/^[a-zA-Z]/.test(base)) throw bad('must start with a letter and use only 0-9 a-z A-Z , . _ + -');
  if (at >= 0 && !NODE_NAME_CHARS.test(name.slice(at + 1))) throw bad('has a unit address that is empty or uses characters outside 0-9 a-z A-Z , . _ + -');
}

/** §2.2.4: property names are 1-31 characters of Table 2.2. */
function checkPropName(name: string, where: string): void {
  if (name.length < 1 || name.length > 31 || !PROP_NAME_CHARS.test(name)) {
    throw new FdtError(`${where}: property name ${JSON.stringify(name)} must be 1 to 31 characters of 0-9 a-z A-Z , . _ + ? # -`);
  }
}

/** §5.3: entries must have nonzero sizes, stay below 2^64 and not overlap. */
function checkReserved(list: readonly FdtReserveEntry[]): void {
  for (const { address, size } of list) {
    if (typeof address !== 'bigint' || typeof size !== 'bigint' || address < 0n || size <= 0n || address + size > 1n << 64n) {
      throw new FdtError(`reserved region ${String(address)}+${String(size)} is empty or out of range`);
    }
  }
  const sorted = [...list].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    if (prev && cur && prev.address + prev.size > cur.address) {
      throw new FdtError(`reserved regions at 0x${prev.address.toString(16)} and 0x${cur.address.toString(16)} overlap`);
    }
  }
}

// ------------------------------------------------------------------ encoding

/** An append-only big-endian byte buffer. */
class ByteWriter {
  private buf = new Uint8Array(1024);
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  u32(v: number): void {
    this.room(4);
    new DataView(this.buf.buffer).setUint32(this.length, v);
    this.length += 4;
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  /** A NUL-terminated ASCII string (names are checked to be ASCII). */
  cstring(s: string): void {
    this.room(s.length + 1);
    for (let i = 0; i < s.length; i++) this.buf[this.length++] = s.charCodeAt(i);
    this.buf[this.length++] = 0;
  }

  /** Zero padding up to a multiple of 4 (§5.4.1). */
  align4(): void {
    const pad = (4 - (this.length % 4)) % 4;
    this.room(pad);
    this.buf.fill(0, this.length, this.length + pad);
    this.length += pad;
  }

  view(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

/** Encodes `root` (named "") as a version 17 DTB. Throws FdtError on an invalid tree. */
export function encodeFdt(root: FdtNode, opts: FdtEncodeOptions = {}): Uint8Array {
  const bootCpuId = opts.bootCpuId ?? 0;
  if (!Number.isInteger(bootCpuId) || bootCpuId < 0 || bootCpuId > 0xffffffff) throw new FdtError(`bootCpuId ${bootCpuId} out of range`);
  const reserved = opts.reserved ?? [];
  checkReserved(reserved);
  if (root.name !== '') throw new FdtError(`root node name must be "" (got ${JSON.stringify(root.name)})`);

  const struct = new ByteWriter(); // §5.4
  const strings = new ByteWriter(); // §5.5: each property name once
  const nameOffsets = new Map<string, number>();
  const phandleOwners = new Map<number, string>(); // phandle -> node path

  const emit = (n: FdtNode, path: string, depth: number): void => {
    if (depth > FDT_MAX_DEPTH) throw new FdtError(`${path}: tree deeper than ${FDT_MAX_DEPTH} levels`);
    // §5.4.2: FDT_BEGIN_NODE, name, padding; properties; child nodes; FDT_END_NODE.
    struct.u32(FDT_BEGIN_NODE);
    struct.cstring(n.name);
    struct.align4();
    const propNames = new Set<string>();
    for (const [name, value] of n.props) {
      checkPropName(name, path);
      if (propNames.has(name)) throw new FdtError(`${path}: duplicate property ${JSON.stringify(name)}`);
      propNames.add(name);
      let data: Uint8Array;
      try {
        data = fdtValueBytes(value);
      } catch (e) {
        throw e instanceof FdtError ? new FdtError(`${path}: property ${JSON.stringify(name)}: ${e.message}`) : e;
      }
      if (name === 'phandle' || name === 'linux,phandle') {
        // §2.3.3: one cell, unique in the tree; 0 and 0xffffffff are never valid phandles in practice.
        const v = data.length === 4 ? new DataView(data.buffer, data.byteOffset, 4).getUint32(0) : 0;
        if (v === 0 || v === 0xffffffff) throw new FdtError(`${path}: ${name} must be one u32 cell other than 0 and 0xffffffff`);
        const owner = phandleOwners.get(v);
        if (owner !== undefined && owner !== path) throw new FdtError(`${path}: phandle ${v} already used by ${owner}`);
        phandleOwners.set(v, path);
      }
      let off = nameOffsets.get(name);
      if (off === undefined) {
        off = strings.length;
        strings.cstring(name);
        nameOffsets.set(name, off);
      }
      struct.u32(FDT_PROP);
      struct.u32(data.length); // len
      struct.u32(off); // nameoff
      struct.bytes(data);
      struct.align4();
    }
    const childNames = new Set<string>();
    for (const c of n.children) {
      checkNodeName(c.name, path);
      if (childNames.has(c.name)) throw new FdtError(`${path}: duplicate child node ${JSON.stringify(c.name)}`);
      // §2.2.1: a node-name without unit address must differ from the property names beside it.
      if (propNames.has(c.name)) throw new FdtError(`${path}: child node ${JSON.stringify(c.name)} has the name of a property`);
      childNames.add(c.name);
      emit(c, path === '/' ? `/${c.name}` : `${path}/${c.name}`, depth + 1);
    }
    struct.u32(FDT_END_NODE);
  };
  emit(root, '/', 1);
  struct.u32(FDT_END);

  for (const [label, v] of opts.phandles?.labels ?? []) {
    if (!phandleOwners.has(v)) throw new FdtError(`phandle ${v} (label ${JSON.stringify(label)}) is not attached to any node of the tree`);
  }

  // §5.1, §5.6: header; reservation block at 40 (8-aligned); structure block
  // right after it (a multiple of 16 bytes, so 8-aligned); strings block last.
  const offMemRsvmap = HEADER_SIZE;
  const offDtStruct = offMemRsvmap + 16 * (reserved.length + 1);
  const offDtStrings = offDtStruct + struct.length;
  const totalSize = offDtStrings + strings.length;
  if (totalSize > 0xffffffff) throw new FdtError('tree too large for a DTB');
  const out = new Uint8Array(totalSize);
  const dv = new DataView(out.buffer);
  [FDT_MAGIC, totalSize, offDtStruct, offDtStrings, offMemRsvmap, FDT_VERSION, FDT_LAST_COMP_VERSION, bootCpuId, strings.length, struct.length]
    .forEach((v, i) => dv.setUint32(4 * i, v));
  reserved.forEach(({ address, size }, i) => {
    dv.setBigUint64(offMemRsvmap + 16 * i, address);
    dv.setBigUint64(offMemRsvmap + 16 * i + 8, size);
  }); // the terminating zero entry is already zero
  out.set(struct.view(), offDtStruct);
  out.set(strings.view(), offDtStrings);
  return out;
}

// ------------------------------------------------------------------ decoding

/** Decodes a DTB into its tree (values as bytes); throws FdtError on anything malformed. */
export function decodeFdt(blob: Uint8Array): FdtNode {
  return decodeFdtBlob(blob).root;
}

/** Decodes a DTB with its header facts and memory reservation block. */
export function decodeFdtBlob(blob: Uint8Array): DecodedFdt {
  if (blob.length < HEADER_SIZE) throw new FdtError(`blob of ${blob.length} bytes is too short for a DTB header`);
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  // §5.2 Header
  const magic = dv.getUint32(0);
  const totalSize = dv.getUint32(4);
  const offDtStruct = dv.getUint32(8);
  const offDtStrings = dv.getUint32(12);
  const offMemRsvmap = dv.getUint32(16);
  const version = dv.getUint32(20);
  const lastCompVersion = dv.getUint32(24);
  const bootCpuId = dv.getUint32(28);
  const sizeDtStrings = dv.getUint32(32);
  const sizeDtStruct = dv.getUint32(36);
  if (magic !== FDT_MAGIC) throw new FdtError(`bad magic 0x${magic.toString(16)}`);
  // §5.1: accept any version backwards compatible with 17.
  if (version < FDT_VERSION || lastCompVersion > FDT_VERSION || lastCompVersion > version) {
    throw new FdtError(`unsupported DTB version ${version} (last compatible ${lastCompVersion})`);
  }
  if (totalSize < HEADER_SIZE || totalSize > blob.length) throw new FdtError(`totalsize ${totalSize} outside ${HEADER_SIZE}..${blob.length}`);
  const limit = totalSize; // nothing past totalsize belongs to the tree

  // §5.3 Memory reservation block: 8-aligned (u64, u64) pairs ending with (0, 0).
  if (offMemRsvmap % 8 !== 0 || offMemRsvmap < HEADER_SIZE) throw new FdtError(`bad off_mem_rsvmap ${offMemRsvmap}`);
  const reserved: FdtReserveEntry[] = [];
  let rsvEnd = offMemRsvmap;
  for (;;) {
    if (rsvEnd + 16 > limit) throw new FdtError('memory reservation block is not terminated');
    const address = dv.getBigUint64(rsvEnd);
    const size = dv.getBigUint64(rsvEnd + 8);
    rsvEnd += 16;
    if (address === 0n && size === 0n) break;
    reserved.push({ address, size });
  }
  checkReserved(reserved);

  // §5.4 structure block (4-aligned, whole tokens), §5.5 strings block.
  if (offDtStruct % 4 !== 0 || sizeDtStruct % 4 !== 0) throw new FdtError('structure block is not 4-byte aligned');
  const blocks: [string, number, number][] = [
    ['memory reservation block', offMemRsvmap, rsvEnd],
    ['structure block', offDtStruct, offDtStruct + sizeDtStruct],
    ['strings block', offDtStrings, offDtStrings + sizeDtStrings],
  ];
  for (const [name, start, end] of blocks) {
    if (start < HEADER_SIZE || end > limit) throw new FdtError(`${name} ${start}..${end} outside ${HEADER_SIZE}..${limit}`);
  }
  for (let i = 0; i < blocks.length; i++) {
    for (let j = i + 1; j < blocks.length; j++) {
      const a = blocks[i];
      const b = blocks[j];
      if (a && b && a[1] < a[2] && b[1] < b[2] && a[1] < b[2] && b[1] < a[2]) throw new FdtError(`${a[0]} overlaps ${b[0]}`);
    }
  }
  const structEnd = offDtStruct + sizeDtStruct;
  const stringsEnd = offDtStrings + sizeDtStrings;

  /** A NUL-terminated name at `at`, before `end`; returns it and the offset after its NUL. */
  const readName = (at: number, end: number, what: string): [string, number] => {
    const stop = Math.min(end, at + DECODE_MAX_NAME + 1);
    let s = '';
    for (let i = at; i < stop; i++) {
      const c = blob[i] ?? 0;
      if (c === 0) return [s, i + 1];
      if (c < 0x21 || c > 0x7e || c === 0x2f) throw new FdtError(`${what} at offset ${at} has byte 0x${c.toString(16)}`);
      s += String.fromCharCode(c);
    }
    throw new FdtError(`${what} at offset ${at} is unterminated or longer than ${DECODE_MAX_NAME} bytes`);
  };
  let p = offDtStruct;
  /**
   * Skips padding to the next 4-byte boundary (§5.4.1). The spec says zeroed,
   * but its contents are not checked: QEMU's own virt DTB has leftovers there.
   */
  const pad = (): void => {
    p = (p + 3) & ~3;
    if (p > structEnd) throw new FdtError('structure block ends inside padding');
  };

  const propNames = new Map<number, string>(); // nameoff -> name, each read once
  interface Open { node: FdtNode; props: Set<string>; children: Set<string> }
  const stack: Open[] = [];
  let root: FdtNode | undefined;
  // §5.4.2: every step consumes at least one token, so the loop ends.
  for (;;) {
    if (p + 4 > structEnd) throw new FdtError('structure block ends without FDT_END');
    const at = p;
    const token = dv.getUint32(p);
    p += 4;
    const top = stack[stack.length - 1];
    if (token === FDT_NOP) continue;
    if (token === FDT_BEGIN_NODE) {
      if (root && !top) throw new FdtError(`second root node at offset ${at}`);
      if (stack.length >= FDT_MAX_DEPTH) throw new FdtError(`nodes nested deeper than ${FDT_MAX_DEPTH} levels at offset ${at}`);
      const [name, next] = readName(p, structEnd, 'node name');
      p = next;
      pad();
      const n: FdtNode = { name, props: [], children: [] };
      if (top) {
        if (name === '') throw new FdtError(`empty node name at offset ${at}`);
        if (top.children.has(name)) throw new FdtError(`duplicate node ${JSON.stringify(name)} at offset ${at}`);
        top.children.add(name);
        top.node.children.push(n);
      } else {
        if (name !== '') throw new FdtError(`root node name ${JSON.stringify(name)} is not empty`);
        root = n;
      }
      stack.push({ node: n, props: new Set(), children: new Set() });
    } else if (token === FDT_PROP) {
      if (!top) throw new FdtError(`FDT_PROP outside a node at offset ${at}`);
      if (top.node.children.length > 0) throw new FdtError(`property after child nodes at offset ${at}`);
      if (p + 8 > structEnd) throw new FdtError(`truncated FDT_PROP at offset ${at}`);
      const len = dv.getUint32(p);
      const nameoff = dv.getUint32(p + 4);
      p += 8;
      if (len > structEnd - p) throw new FdtError(`property value at offset ${at} runs past the structure block`);
      if (nameoff >= sizeDtStrings) throw new FdtError(`property name offset ${nameoff} outside the strings block`);
      let name = propNames.get(nameoff);
      if (name === undefined) {
        name = readName(offDtStrings + nameoff, stringsEnd, 'property name')[0];
        propNames.set(nameoff, name);
      }
      if (name === '') throw new FdtError(`empty property name at offset ${at}`);
      if (top.props.has(name)) throw new FdtError(`duplicate property ${JSON.stringify(name)} at offset ${at}`);
      top.props.add(name);
      top.node.props.push([name, { kind: 'bytes', data: blob.slice(p, p + len) }]);
      p += len;
      pad();
    } else if (token === FDT_END_NODE) {
      if (!top) throw new FdtError(`FDT_END_NODE without a node at offset ${at}`);
      stack.pop();
    } else if (token === FDT_END) {
      if (!root || top) throw new FdtError(`FDT_END at offset ${at} before the root node is closed`);
      if (p !== structEnd) throw new FdtError(`${structEnd - p} bytes after FDT_END`);
      return { root, bootCpuId, reserved, version };
    } else {
      throw new FdtError(`unknown token 0x${token.toString(16)} at offset ${at}`);
    }
  }
}
