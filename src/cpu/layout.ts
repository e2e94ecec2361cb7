/**
 * The hart state block: every architectural register of one hart, as 64-bit
 * slots in machine memory (brief, section 3). TypeScript, generated Wasm and
 * other threads address the same bytes; a snapshot copies the block.
 *
 * Bump HART_STATE_VERSION whenever a slot moves or changes meaning.
 */
export const HART_STATE_VERSION = 1;

export const SLOT = {
  X: 0, // x0..x31
  F: 32, // f0..f31
  PC: 64,
  PRIV: 65,
  MSTATUS: 66,
  MISA: 67,
  MEDELEG: 68,
  MIDELEG: 69,
  MIE: 70,
  /** mip bits written by software (SSIP, STIP without Sstc, SEIP). */
  MIP: 71,
  MTVEC: 72,
  MSCRATCH: 73,
  MEPC: 74,
  MCAUSE: 75,
  MTVAL: 76,
  MCOUNTEREN: 77,
  MENVCFG: 78,
  MCOUNTINHIBIT: 79,
  STVEC: 80,
  SSCRATCH: 81,
  SEPC: 82,
  SCAUSE: 83,
  STVAL: 84,
  SCOUNTEREN: 85,
  SENVCFG: 86,
  SATP: 87,
  STIMECMP: 88,
  FCSR: 89,
  MCYCLE: 90,
  MINSTRET: 91,
  MHARTID: 92,
  PMPCFG0: 93, // entries 0..7
  PMPCFG2: 94, // entries 8..15
  PMPADDR0: 95, // ..110
  /** Interrupt lines driven by devices (MSIP, SEIP, MEIP bits of mip); low word, updated with Atomics. */
  IRQ_LINES: 111,
  /** The machine timer comparator of this hart (ACLINT MTIMER mtimecmp), written by the timer device. */
  MTIMECMP: 112,
  /** LR reservation: machine address (or -1) and the value LR observed. */
  RES_ADDR: 113,
  RES_VALUE: 114,
  /** Low word: wake-up counter for a hart sleeping in WFI (Atomics.wait/notify). */
  WAKE: 115,
  VERSION: 116,
  /**
   * Derived, not architectural (recomputed from priv, mstatus and satp): byte
   * addresses of the soft-TLB tables translated code uses for fetch and data.
   */
  JIT_FETCH_TLB: 117,
  JIT_DATA_TLB: 118,
  /** Scratch for the translator's slow-path helpers (a loaded value). */
  JIT_SCRATCH: 119,
  /**
   * Requests from other threads (REQ_* bits), low word, and their sequence
   * numbers: posted and acknowledged. The hart serves them at its next slice
   * boundary (SBI remote fences of an SMP guest whose harts run on threads).
   */
  REQ_BITS: 120,
  REQ_SEQ: 121,
  REQ_ACK: 122,
  /** Low word: 1 while the hart is inside run(); outside it, a request needs no wait. */
  IN_RUN: 123,
  /**
   * Scratch of translated code, not architectural: the virtual address of the page
   * of the region running (its helpers' pcs are offsets in it), and the budget a
   * helper gives back when it makes the region leave early.
   */
  JIT_PAGE: 124,
  JIT_REFUND: 125,
} as const;

/** Remote requests (SLOT.REQ_BITS): drop every soft-TLB entry; FENCE.I. */
export const REQ_FLUSH_TLB = 1;
export const REQ_FENCE_I = 2;

export const HART_SLOTS = 128;
export const HART_BLOCK_BYTES = HART_SLOTS * 8;
export const PMP_ENTRIES = 16;

/**
 * Soft TLB: direct-mapped tables, one per MMU context (QEMU's softmmu design).
 * An entry is 8 words: tags for read, write and execute, each the page-aligned
 * virtual address as two words (low, then high: TLB_HI), so translated code
 * compares one i64; the machine address of the page; its guest-physical page
 * number. Every valid tag describes the same page (they share the address).
 */
export const TLB_ENTRIES = 2048;
export const TLB_ENTRY_WORDS = 8;
export const TLB_TAG_READ = 0;
export const TLB_TAG_WRITE = 2;
export const TLB_TAG_EXEC = 4;
/** The high word of a tag, after its low word. */
export const TLB_HI = 1;
export const TLB_MADDR = 6;
export const TLB_GPPN = 7;
/**
 * The low word of a tag that matches nothing. Translated code compares a tag with
 * the address masked to its page and its misaligned low bits (at most 7): bit 11
 * is never set there, so no access, aligned or not, hits an invalid entry.
 */
export const TLB_INVALID = 0x800;
/**
 * MMU contexts. Context 0 is M (physical). The others come in banks of five
 * (data: U, S, S with SUM; fetch: U, S), one bank per address space (satp
 * MODE + ASID) recently used, so switching between address spaces does not
 * flush. Fetches have tables of their own: sharing entries with data let a code
 * page and a data page with the same index evict each other on every use.
 */
export const TLB_CTX_M = 0;
export const TLB_CTX_U = 0;
export const TLB_CTX_S = 1;
export const TLB_CTX_S_SUM = 2;
export const TLB_CTX_U_FETCH = 3;
export const TLB_CTX_S_FETCH = 4;
export const TLB_BANK_CONTEXTS = 5;
export const TLB_BANKS = 4;
export const TLB_CONTEXTS = 1 + TLB_BANKS * TLB_BANK_CONTEXTS;
export const TLB_BYTES = TLB_CONTEXTS * TLB_ENTRIES * TLB_ENTRY_WORDS * 4;
