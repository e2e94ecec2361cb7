/**
 * ELF64 reader for RISC-V executables (System V gABI; RISC-V ELF psABI):
 * loadable segments at their physical addresses, the entry point and symbols.
 * Every field is bounds-checked: a truncated or hostile file gives an ElfError.
 */

export class ElfError extends Error {
  override readonly name = 'ElfError';
}

const EM_RISCV = 243;
const PT_LOAD = 1;
const SHT_SYMTAB = 2;

export interface ElfSegment {
  /** Physical load address (p_paddr). */
  readonly paddr: number;
  readonly vaddr: number;
  readonly data: Uint8Array;
  /** Bytes in memory; the part beyond data.length is zero. */
  readonly memsz: number;
}

export interface ElfImage {
  /** ET_DYN images (position independent) are placed by the loader, their addresses are offsets. */
  readonly positionIndependent: boolean;
  readonly entry: number;
  readonly segments: readonly ElfSegment[];
  readonly symbols: ReadonlyMap<string, number>;
}

/** True if `b` starts with the ELF magic. */
export function isElf(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46;
}

export function parseElf(buf: Uint8Array): ElfImage {
  if (buf.length < 64) throw new ElfError('not an ELF file (too short)');
  if (buf[0] !== 0x7f || buf[1] !== 0x45 || buf[2] !== 0x4c || buf[3] !== 0x46) throw new ElfError('not an ELF file (bad magic)');
  if (buf[4] !== 2) throw new ElfError('not a 64-bit ELF file');
  if (buf[5] !== 1) throw new ElfError('not a little-endian ELF file');
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const machine = dv.getUint16(18, true);
  if (machine !== EM_RISCV) throw new ElfError(`not a RISC-V ELF file (e_machine ${machine})`);
  const u64 = (off: number): number => {
    if (off + 8 > buf.length) throw new ElfError('truncated ELF file');
    const v = dv.getBigUint64(off, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ElfError('ELF value out of range');
    return Number(v);
  };
  const u32 = (off: number): number => {
    if (off + 4 > buf.length) throw new ElfError('truncated ELF file');
    return dv.getUint32(off, true);
  };
  const u16 = (off: number): number => {
    if (off + 2 > buf.length) throw new ElfError('truncated ELF file');
    return dv.getUint16(off, true);
  };
  const positionIndependent = u16(16) === 3; // e_type ET_DYN
  const entry = u64(24);
  const phoff = u64(32);
  const shoff = u64(40);
  const phentsize = u16(54);
  const phnum = u16(56);
  const shentsize = u16(58);
  const shnum = u16(60);
  if (phnum > 0 && phentsize < 56) throw new ElfError('bad program header size');
  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    if (p + 56 > buf.length) throw new ElfError('truncated ELF file (program headers)');
    if (u32(p) !== PT_LOAD) continue;
    const offset = u64(p + 8);
    const vaddr = u64(p + 16);
    const paddr = u64(p + 24);
    const filesz = u64(p + 32);
    const memsz = u64(p + 40);
    if (filesz > memsz) throw new ElfError('segment file size exceeds its memory size');
    if (offset + filesz > buf.length) throw new ElfError('truncated ELF file (segment data)');
    segments.push({ paddr, vaddr, memsz, data: buf.subarray(offset, offset + filesz) });
  }
  if (segments.length === 0) throw new ElfError('ELF file has no loadable segments');
  const symbols = new Map<string, number>();
  if (shoff !== 0 && shnum > 0) {
    if (shentsize < 64) throw new ElfError('bad section header size');
    for (let i = 0; i < shnum; i++) {
      const s = shoff + i * shentsize;
      if (s + 64 > buf.length) throw new ElfError('truncated ELF file (section headers)');
      if (u32(s + 4) !== SHT_SYMTAB) continue;
      const off = u64(s + 24);
      const size = u64(s + 32);
      const link = u32(s + 40);
      const entsize = u64(s + 56) || 24;
      if (link >= shnum) throw new ElfError('bad symbol table link');
      const str = shoff + link * shentsize;
      const strOff = u64(str + 24);
      const strSize = u64(str + 32);
      if (off + size > buf.length || strOff + strSize > buf.length) throw new ElfError('truncated ELF file (symbols)');
      for (let e = off; e + 24 <= off + size; e += entsize) {
        const nameOff = u32(e);
        if (nameOff >= strSize) continue;
        let end = strOff + nameOff;
        while (end < strOff + strSize && buf[end] !== 0) end++;
        const name = new TextDecoder().decode(buf.subarray(strOff + nameOff, end));
        if (name) symbols.set(name, u64(e + 8));
      }
    }
  }
  return { positionIndependent, entry, segments, symbols };
}
