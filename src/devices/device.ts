/**
 * What a memory-mapped device model offers the machine: register reads and
 * writes at offsets within its window. A device never sees the CPU; it talks to
 * harts only through the interrupt port below.
 */
export type AccessSize = 1 | 2 | 4 | 8;

export interface MmioDevice {
  readonly name: string;
  readonly base: number;
  readonly size: number;
  /** Returns the value read (unsigned), or null if the device refuses the access (access fault). */
  read(offset: number, size: AccessSize): bigint | null;
  /** Returns false if the device refuses the access (access fault). */
  write(offset: number, size: AccessSize, value: bigint): boolean;
}

/** A hart's interrupt inputs, as a device sees them. */
export interface InterruptPort {
  setIrqLine(bit: number, level: boolean): void;
  irqLines(): number;
  setTimerCompare(v: bigint): void;
  timerCompare(): bigint;
}
