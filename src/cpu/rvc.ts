/**
 * The C extension as a table: every 16-bit parcel maps to the 32-bit instruction
 * it expands to (unprivileged spec, chapter 16, "RVC instruction set listings"),
 * or 0 when it is illegal or reserved. The interpreter and the translator then
 * handle one instruction set; only the instruction length differs.
 */

const OP_LOAD = 0x03, OP_LOAD_FP = 0x07, OP_IMM = 0x13, OP_IMM_32 = 0x1b, OP_STORE = 0x23,
  OP_STORE_FP = 0x27, OP = 0x33, OP_LUI = 0x37, OP_32 = 0x3b, OP_BRANCH = 0x63, OP_JALR = 0x67,
  OP_JAL = 0x6f;

const bit = (x: number, i: number): number => (x >>> i) & 1;
const bits = (x: number, hi: number, lo: number): number => (x >>> lo) & ((1 << (hi - lo + 1)) - 1);
const sext = (v: number, width: number): number => (v << (32 - width)) >> (32 - width);

function iType(imm: number, rs1: number, f3: number, rd: number, op: number): number {
  return (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) | 0;
}
function sType(imm: number, rs2: number, rs1: number, f3: number, op: number): number {
  return ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1f) << 7) | op) | 0;
}
function rType(f7: number, rs2: number, rs1: number, f3: number, rd: number, op: number): number {
  return ((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) | 0;
}
function bType(imm: number, rs2: number, rs1: number, f3: number): number {
  return ((bit(imm, 12) << 31) | (bits(imm, 10, 5) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) |
    (bits(imm, 4, 1) << 8) | (bit(imm, 11) << 7) | OP_BRANCH) | 0;
}
function jType(imm: number, rd: number): number {
  return ((bit(imm, 20) << 31) | (bits(imm, 10, 1) << 21) | (bit(imm, 11) << 20) | (bits(imm, 19, 12) << 12) |
    (rd << 7) | OP_JAL) | 0;
}

/** Expands one 16-bit parcel (low two bits != 3); 0 if illegal. */
export function expandCompressed(c: number): number {
  const q = c & 3;
  const f3 = bits(c, 15, 13);
  const rdP = 8 + bits(c, 4, 2); // rd' / rs2'
  const rs1P = 8 + bits(c, 9, 7); // rs1' / rd'
  const rd = bits(c, 11, 7);
  const rs2 = bits(c, 6, 2);
  const imm6 = sext((bit(c, 12) << 5) | bits(c, 6, 2), 6);
  switch (q) {
    case 0: {
      switch (f3) {
        case 0: { // C.ADDI4SPN
          const nzuimm = (bits(c, 12, 11) << 4) | (bits(c, 10, 7) << 6) | (bit(c, 6) << 2) | (bit(c, 5) << 3);
          return nzuimm === 0 ? 0 : iType(nzuimm, 2, 0, rdP, OP_IMM);
        }
        case 1: // C.FLD
          return iType((bits(c, 12, 10) << 3) | (bits(c, 6, 5) << 6), rs1P, 3, rdP, OP_LOAD_FP);
        case 2: // C.LW
          return iType((bits(c, 12, 10) << 3) | (bit(c, 6) << 2) | (bit(c, 5) << 6), rs1P, 2, rdP, OP_LOAD);
        case 3: // C.LD
          return iType((bits(c, 12, 10) << 3) | (bits(c, 6, 5) << 6), rs1P, 3, rdP, OP_LOAD);
        case 5: // C.FSD
          return sType((bits(c, 12, 10) << 3) | (bits(c, 6, 5) << 6), rdP, rs1P, 3, OP_STORE_FP);
        case 6: // C.SW
          return sType((bits(c, 12, 10) << 3) | (bit(c, 6) << 2) | (bit(c, 5) << 6), rdP, rs1P, 2, OP_STORE);
        case 7: // C.SD
          return sType((bits(c, 12, 10) << 3) | (bits(c, 6, 5) << 6), rdP, rs1P, 3, OP_STORE);
        default:
          return 0;
      }
    }
    case 1: {
      switch (f3) {
        case 0: // C.ADDI / C.NOP
          return iType(imm6, rd, 0, rd, OP_IMM);
        case 1: // C.ADDIW (RV64); rd = 0 reserved
          return rd === 0 ? 0 : iType(imm6, rd, 0, rd, OP_IMM_32);
        case 2: // C.LI
          return iType(imm6, 0, 0, rd, OP_IMM);
        case 3: {
          if (rd === 2) { // C.ADDI16SP
            const nz = sext((bit(c, 12) << 9) | (bit(c, 6) << 4) | (bit(c, 5) << 6) | (bits(c, 4, 3) << 7) | (bit(c, 2) << 5), 10);
            return nz === 0 ? 0 : iType(nz, 2, 0, 2, OP_IMM);
          }
          // C.LUI
          const nz = sext((bit(c, 12) << 17) | (bits(c, 6, 2) << 12), 18);
          return nz === 0 ? 0 : ((nz & 0xfffff000) | (rd << 7) | OP_LUI) | 0;
        }
        case 4: {
          const shamt = (bit(c, 12) << 5) | bits(c, 6, 2);
          switch (bits(c, 11, 10)) {
            case 0: return iType(shamt, rs1P, 5, rs1P, OP_IMM); // C.SRLI
            case 1: return iType(0x400 | shamt, rs1P, 5, rs1P, OP_IMM); // C.SRAI
            case 2: return iType(imm6, rs1P, 7, rs1P, OP_IMM); // C.ANDI
            default: {
              const f2 = bits(c, 6, 5);
              if (bit(c, 12) === 0) {
                switch (f2) {
                  case 0: return rType(0x20, rdP, rs1P, 0, rs1P, OP); // C.SUB
                  case 1: return rType(0, rdP, rs1P, 4, rs1P, OP); // C.XOR
                  case 2: return rType(0, rdP, rs1P, 6, rs1P, OP); // C.OR
                  default: return rType(0, rdP, rs1P, 7, rs1P, OP); // C.AND
                }
              }
              switch (f2) {
                case 0: return rType(0x20, rdP, rs1P, 0, rs1P, OP_32); // C.SUBW
                case 1: return rType(0, rdP, rs1P, 0, rs1P, OP_32); // C.ADDW
                default: return 0;
              }
            }
          }
        }
        case 5: { // C.J
          const off = sext((bit(c, 12) << 11) | (bit(c, 11) << 4) | (bits(c, 10, 9) << 8) | (bit(c, 8) << 10) |
            (bit(c, 7) << 6) | (bit(c, 6) << 7) | (bits(c, 5, 3) << 1) | (bit(c, 2) << 5), 12);
          return jType(off, 0);
        }
        default: { // C.BEQZ / C.BNEZ
          const off = sext((bit(c, 12) << 8) | (bits(c, 11, 10) << 3) | (bits(c, 6, 5) << 6) | (bits(c, 4, 3) << 1) |
            (bit(c, 2) << 5), 9);
          return bType(off, 0, rs1P, f3 === 6 ? 0 : 1);
        }
      }
    }
    case 2: {
      switch (f3) {
        case 0: // C.SLLI
          return iType((bit(c, 12) << 5) | bits(c, 6, 2), rd, 1, rd, OP_IMM);
        case 1: // C.FLDSP
          return iType((bit(c, 12) << 5) | (bits(c, 6, 5) << 3) | (bits(c, 4, 2) << 6), 2, 3, rd, OP_LOAD_FP);
        case 2: // C.LWSP; rd = 0 reserved
          return rd === 0 ? 0 : iType((bit(c, 12) << 5) | (bits(c, 6, 4) << 2) | (bits(c, 3, 2) << 6), 2, 2, rd, OP_LOAD);
        case 3: // C.LDSP; rd = 0 reserved
          return rd === 0 ? 0 : iType((bit(c, 12) << 5) | (bits(c, 6, 5) << 3) | (bits(c, 4, 2) << 6), 2, 3, rd, OP_LOAD);
        case 4: {
          if (bit(c, 12) === 0) {
            if (rs2 === 0) return rd === 0 ? 0 : iType(0, rd, 0, 0, OP_JALR); // C.JR
            return rType(0, rs2, 0, 0, rd, OP); // C.MV
          }
          if (rs2 === 0) {
            if (rd === 0) return 0x00100073; // C.EBREAK
            return iType(0, rd, 0, 1, OP_JALR); // C.JALR
          }
          return rType(0, rs2, rd, 0, rd, OP); // C.ADD
        }
        case 5: // C.FSDSP
          return sType((bits(c, 12, 10) << 3) | (bits(c, 9, 7) << 6), rs2, 2, 3, OP_STORE_FP);
        case 6: // C.SWSP
          return sType((bits(c, 12, 9) << 2) | (bits(c, 8, 7) << 6), rs2, 2, 2, OP_STORE);
        default: // C.SDSP
          return sType((bits(c, 12, 10) << 3) | (bits(c, 9, 7) << 6), rs2, 2, 3, OP_STORE);
      }
    }
    default:
      return 0;
  }
}

let table: Int32Array | undefined;

/** The 64 Ki-entry expansion table, built once per thread. */
export function rvcTable(): Int32Array {
  if (table) return table;
  const t = new Int32Array(65536);
  for (let c = 0; c < 65536; c++) if ((c & 3) !== 3) t[c] = expandCompressed(c);
  table = t;
  return t;
}
