// RISC-V instruction encoders for code that builds programs in memory (tests, the interpreter warm-up)
// (unprivileged spec, chapter 2 "RV32I Base Integer Instruction Set", and 34).

export const r = (f7: number, rs2: number, rs1: number, f3: number, rd: number, op: number): number =>
  ((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
/** R4-type (fused multiply-add): rs3 and the 2-bit format instead of funct7. */
export const r4 = (rs3: number, f2: number, rs2: number, rs1: number, rm: number, rd: number, op: number): number =>
  r((rs3 << 2) | f2, rs2, rs1, rm, rd, op);
export const i = (imm: number, rs1: number, f3: number, rd: number, op: number): number =>
  (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
/** S-type; STORE unless `op` says otherwise (0x27: STORE-FP). */
export const s = (imm: number, rs2: number, rs1: number, f3: number, op = 0x23): number =>
  ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1f) << 7) | op) >>> 0;
export const b = (imm: number, rs2: number, rs1: number, f3: number): number =>
  ((((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) |
    (((imm >> 1) & 0xf) << 8) | (((imm >> 11) & 1) << 7) | 0x63) >>> 0;
export const lui = (imm20: number, rd: number): number => (((imm20 & 0xfffff) << 12) | (rd << 7) | 0x37) >>> 0;
export const jal = (imm: number, rd: number): number =>
  ((((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3ff) << 21) | (((imm >> 11) & 1) << 20) | (((imm >> 12) & 0xff) << 12) | (rd << 7) | 0x6f) >>> 0;
export const csrrw = (csr: number, rs1: number, rd: number): number => i(csr, rs1, 1, rd, 0x73);
export const csrrs = (csr: number, rs1: number, rd: number): number => i(csr, rs1, 2, rd, 0x73);
export const csrrwi = (csr: number, uimm: number): number => i(csr, uimm, 5, 0, 0x73);
export const csrrsi = (csr: number, uimm: number): number => i(csr, uimm, 6, 0, 0x73);
export const csrrci = (csr: number, uimm: number): number => i(csr, uimm, 7, 0, 0x73);
export const ECALL = 0x00000073;
export const MRET = 0x30200073;

/** 32-bit instruction words as little-endian bytes, to write into guest memory. */
export function words(ws: readonly number[]): Uint8Array {
  const out = new Uint8Array(ws.length * 4);
  const dv = new DataView(out.buffer);
  ws.forEach((w, k) => dv.setUint32(4 * k, w >>> 0, true));
  return out;
}
