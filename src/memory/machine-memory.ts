/**
 * Machine memory: one shared WebAssembly.Memory per host process. Guest frames,
 * hart state blocks and soft TLBs all live in it, so TypeScript, generated Wasm
 * and every worker thread see the same bytes (brief, section 3).
 *
 * The memory is created at its full pool size: the host OS commits pages only
 * when they are first touched, so an untouched pool costs nothing.
 *
 * Frames are 4 KiB. The allocator state (bump pointer, free stack, lock) lives
 * in a small SharedArrayBuffer so that any thread can allocate.
 */

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
const WASM_PAGE = 65536;

/** Largest pool: wasm32 addresses 4 GiB; typed-array lengths must stay below 2^32. */
export const MAX_POOL_BYTES = 4 * 1024 * 1024 * 1024 - WASM_PAGE;

const CTL_LOCK = 0;
const CTL_BUMP = 1; // next never-used frame
const CTL_FREE_TOP = 2; // entries on the free stack
const CTL_IN_USE = 3; // frames handed out and not freed
const CTL_WORDS = 4;

export interface MachineMemoryShared {
  readonly memory: WebAssembly.Memory;
  readonly control: SharedArrayBuffer;
  readonly freeStack: SharedArrayBuffer;
  /** One byte per frame: 1 while handed out. Catches double frees. */
  readonly owned: SharedArrayBuffer;
  readonly frames: number;
}

export class MachineMemory {
  readonly memory: WebAssembly.Memory;
  readonly buffer: SharedArrayBuffer;
  /** Total frames in the pool. */
  readonly frames: number;
  readonly u8: Uint8Array;
  private readonly ctl: Int32Array;
  private readonly free: Int32Array;
  private readonly owned: Uint8Array;
  private readonly shared: MachineMemoryShared;

  private constructor(shared: MachineMemoryShared) {
    this.shared = shared;
    this.memory = shared.memory;
    this.buffer = shared.memory.buffer as unknown as SharedArrayBuffer;
    this.frames = shared.frames;
    this.u8 = new Uint8Array(this.buffer);
    this.ctl = new Int32Array(shared.control);
    this.free = new Int32Array(shared.freeStack);
    this.owned = new Uint8Array(shared.owned);
  }

  /** A new pool of `bytes` (rounded up to 64 KiB). */
  static create(bytes: number): MachineMemory {
    if (!Number.isFinite(bytes) || bytes <= 0) throw new RangeError(`machine memory size must be positive, got ${bytes}`);
    if (bytes > MAX_POOL_BYTES) throw new RangeError(`machine memory pool is limited to ${MAX_POOL_BYTES} bytes (wasm32), asked for ${bytes}`);
    const pages = Math.ceil(bytes / WASM_PAGE);
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    const frames = (pages * WASM_PAGE) >>> PAGE_SHIFT;
    const control = new SharedArrayBuffer(CTL_WORDS * 4);
    const freeStack = new SharedArrayBuffer(frames * 4);
    const ctl = new Int32Array(control);
    // Frame 0 is never handed out, so machine address 0 can mean "none".
    ctl[CTL_BUMP] = 1;
    return new MachineMemory({ memory, control, freeStack, owned: new SharedArrayBuffer(frames), frames });
  }

  /** The same pool seen from another thread (pass `share()` through postMessage). */
  static attach(shared: MachineMemoryShared): MachineMemory {
    return new MachineMemory(shared);
  }

  share(): MachineMemoryShared {
    return this.shared;
  }

  private lock(): void {
    while (Atomics.compareExchange(this.ctl, CTL_LOCK, 0, 1) !== 0) {
      Atomics.wait(this.ctl, CTL_LOCK, 1, 1);
    }
  }

  private unlock(): void {
    Atomics.store(this.ctl, CTL_LOCK, 0);
    Atomics.notify(this.ctl, CTL_LOCK, 1);
  }

  /** One zeroed frame, or -1 when the pool is exhausted. */
  allocFrame(): number {
    this.lock();
    let frame = -1;
    let reused = false;
    const top = this.ctl[CTL_FREE_TOP]!;
    if (top > 0) {
      frame = this.free[top - 1]!;
      this.ctl[CTL_FREE_TOP] = top - 1;
      reused = true;
    } else {
      const bump = this.ctl[CTL_BUMP]!;
      if (bump < this.frames) {
        frame = bump;
        this.ctl[CTL_BUMP] = bump + 1;
      }
    }
    if (frame >= 0) {
      this.ctl[CTL_IN_USE] = this.ctl[CTL_IN_USE]! + 1;
      this.owned[frame] = 1;
    }
    this.unlock();
    if (reused) this.u8.fill(0, frame * PAGE_SIZE, (frame + 1) * PAGE_SIZE);
    return frame;
  }

  /** `count` contiguous zeroed frames (for hart blocks and TLBs); returns the first, or -1. */
  allocContiguous(count: number): number {
    this.lock();
    const bump = this.ctl[CTL_BUMP]!;
    let first = -1;
    if (bump + count <= this.frames) {
      first = bump;
      this.ctl[CTL_BUMP] = bump + count;
      this.ctl[CTL_IN_USE] = this.ctl[CTL_IN_USE]! + count;
      this.owned.fill(1, first, first + count);
    }
    this.unlock();
    return first;
  }

  freeFrame(frame: number): void {
    if (!Number.isInteger(frame) || frame <= 0 || frame >= this.frames) throw new RangeError(`bad frame ${frame}`);
    this.lock();
    if (this.owned[frame] !== 1) {
      this.unlock();
      throw new RangeError(`frame ${frame} is not allocated (double free?)`);
    }
    this.owned[frame] = 0;
    const top = this.ctl[CTL_FREE_TOP]!;
    this.free[top] = frame;
    this.ctl[CTL_FREE_TOP] = top + 1;
    this.ctl[CTL_IN_USE] = this.ctl[CTL_IN_USE]! - 1;
    this.unlock();
  }

  /** Frames handed out and not returned. */
  framesInUse(): number {
    return Atomics.load(this.ctl, CTL_IN_USE);
  }

  framesFree(): number {
    return this.frames - 1 - this.framesInUse();
  }
}
