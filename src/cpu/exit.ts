/**
 * What `Hart.run()` returns: the reason the hart stopped, as with KVM_RUN.
 * The caller handles it and calls `run()` again.
 */

export type AccessKind = 'read' | 'write' | 'fetch';

/** Where an MMIO load result goes once the caller has emulated the access. */
export interface LoadDest {
  /** 'x' integer register, 'f' floating-point register. */
  readonly file: 'x' | 'f';
  readonly reg: number;
  /** Sign-extend the loaded value to 64 bits (integer loads only). */
  readonly signed: boolean;
}

export type Exit =
  /** The instruction budget given to run() is spent. */
  | { readonly kind: 'budget' }
  /** WFI with no interrupt pending; pc is past the WFI. Resume when an interrupt may be pending. */
  | { readonly kind: 'wfi' }
  /** ECALL from a privilege level the host asked to serve (SBI as a hypercall); pc is past the ECALL. */
  | { readonly kind: 'ecall'; readonly priv: number }
  /**
   * A load or store to a guest-physical address that no RAM region maps (a device or a hole).
   * Loads: the caller calls `completeLoad(value)`; stores have `value` and are already retired.
   * Either may instead call `accessFault()` to raise the access-fault exception in the guest.
   */
  | {
      readonly kind: 'mmio';
      readonly write: boolean;
      readonly gpa: number;
      readonly size: 1 | 2 | 4 | 8;
      /** Store data (stores only), as an unsigned 64-bit value. */
      readonly value: bigint;
      /** Load destination (loads only). */
      readonly dest: LoadDest | null;
    }
  /** A store to a guest page the physical map holds read-only (copy-on-write, shared). Not retired: fix the map and run again. */
  | { readonly kind: 'readonly'; readonly gpa: number }
  /** A guest-physical RAM page could not be backed (the pool or the VM's limit is exhausted). Not retired. */
  | { readonly kind: 'nomem'; readonly gpa: number }
  /** A store to the HTIF tohost word (riscv-tests convention). Retired. */
  | { readonly kind: 'htif'; readonly value: bigint }
  /** An exception that would enter M-mode, with machineTrapExit set; not taken, pc on the instruction. */
  | { readonly kind: 'trap'; readonly cause: number; readonly tval: bigint; readonly epc: bigint }
  /** The hart stopped for good (double fault in a configuration that cannot trap, or a host request). */
  | { readonly kind: 'halt'; readonly reason: string };

export type ExitKind = Exit['kind'];
