/**
 * The virtio-mmio transport, version 2 (virtio 1.2, section 4.2): the register
 * window a driver sees at one of the board's virtio-mmio slots, the device
 * status state machine (2.1, 3.1), feature negotiation (2.2), queue setup and
 * the interrupt line. The device it carries knows its queues and configuration
 * space; this file knows nothing device-specific.
 *
 * Registers (0x000-0x0ff) take 32-bit aligned accesses only; other sizes are
 * ignored (reads return 0), as are reads of write-only and writes of read-only
 * registers. The configuration space (0x100 + n) takes naturally aligned 1-,
 * 2-, 4- and 8-byte accesses. No access faults the guest.
 */
import type { AccessSize, MmioDevice } from '../device.js';
import {
  DISCO_VENDOR_ID, F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1, INT_CONFIG_CHANGE, INT_USED_BUFFER, MMIO_MAGIC, MMIO_VERSION,
  REG_CONFIG, REG_CONFIG_GENERATION, REG_DEVICE_FEATURES, REG_DEVICE_FEATURES_SEL, REG_DEVICE_ID, REG_DRIVER_FEATURES,
  REG_DRIVER_FEATURES_SEL, REG_INTERRUPT_ACK, REG_INTERRUPT_STATUS, REG_MAGIC_VALUE, REG_QUEUE_DESC_HIGH, REG_QUEUE_DESC_LOW,
  REG_QUEUE_DEVICE_HIGH, REG_QUEUE_DEVICE_LOW, REG_QUEUE_DRIVER_HIGH, REG_QUEUE_DRIVER_LOW, REG_QUEUE_NOTIFY, REG_QUEUE_NUM,
  REG_QUEUE_NUM_MAX, REG_QUEUE_READY, REG_QUEUE_SEL, REG_SHM_BASE_HIGH, REG_SHM_BASE_LOW, REG_SHM_LEN_HIGH, REG_SHM_LEN_LOW,
  REG_STATUS, REG_VENDOR_ID, REG_VERSION, STATUS_ACKNOWLEDGE, STATUS_DEVICE_NEEDS_RESET, STATUS_DRIVER, STATUS_DRIVER_BITS,
  STATUS_DRIVER_OK, STATUS_FAILED, STATUS_FEATURES_OK, TRANSPORT_FEATURES, feature,
} from './constants.js';
import type { ConfigAccessSize, VirtioDevice, VirtioDeviceContext } from './device.js';
import { CheckedMemory, type GuestMemory } from './memory.js';
import { Virtqueue, type QueueOwner, type VirtqueueState } from './queue.js';

export interface VirtioMmioOptions<S> {
  /** Guest-physical base of the register window. */
  readonly base: number;
  readonly device: VirtioDevice<S>;
  readonly mem: GuestMemory;
  /** The interrupt line's level (high while InterruptStatus is not 0); connect it to the PLIC. */
  readonly irq: (level: boolean) => void;
  /** Window size, 0x1000 by default (a QEMU virt slot). */
  readonly size?: number;
  readonly vendorId?: number;
  /** Told why the device set DEVICE_NEEDS_RESET (diagnostics; the guest only sees the status bit). */
  readonly onError?: (reason: string) => void;
}

export interface VirtioMmioState<S> {
  readonly version: 1;
  status: number;
  deviceFeaturesSel: number;
  driverFeaturesSel: number;
  /** The driver's feature bits 0-31 and 32-63. */
  driverFeaturesLo: number;
  driverFeaturesHi: number;
  /** The driver wrote a non-zero word for feature bits 64 and above (never offered). */
  driverFeaturesBeyond: boolean;
  queueSel: number;
  interruptStatus: number;
  configGeneration: number;
  queues: VirtqueueState[];
  device: S;
}

const u32 = (v: bigint): number => Number(v & 0xffffffffn);

export class VirtioMmioTransport<S = unknown> implements MmioDevice {
  readonly name: string;
  readonly base: number;
  readonly size: number;
  readonly device: VirtioDevice<S>;
  /** Everything offered: the device's features and the transport's. */
  readonly offeredFeatures: bigint;
  private readonly vendorId: number;
  private readonly irq: (level: boolean) => void;
  private readonly onError: ((reason: string) => void) | undefined;
  private readonly mem: CheckedMemory;
  private readonly queues: Virtqueue[];
  private s: Omit<VirtioMmioState<S>, 'queues' | 'device'>;
  private line = false;
  private lastFault: string | null = null;

  constructor(opts: VirtioMmioOptions<S>) {
    const { device } = opts;
    this.base = opts.base;
    this.size = opts.size ?? 0x1000;
    if (this.size < REG_CONFIG + device.configSize) throw new RangeError(`virtio-mmio window of ${this.size} bytes is too small for ${device.name}`);
    if (device.queueSizes.length > 0x10000) throw new RangeError('a virtio device has at most 65536 queues');
    this.device = device;
    this.name = `virtio-mmio (${device.name})`;
    this.vendorId = opts.vendorId ?? DISCO_VENDOR_ID;
    this.irq = opts.irq;
    this.onError = opts.onError;
    this.mem = new CheckedMemory(opts.mem);
    this.offeredFeatures = BigInt.asUintN(64, device.features | TRANSPORT_FEATURES);
    const owner: QueueOwner = { mem: this.mem, live: () => this.live(), fault: (reason) => this.needsReset(reason) };
    this.queues = device.queueSizes.map((max, i) => new Virtqueue(i, max, owner));
    this.s = this.initial(0);
    const ctx: VirtioDeviceContext = {
      queue: (i) => {
        const q = this.queues[i];
        return q && q.ready && this.live() ? q : null;
      },
      usedBuffers: (i) => {
        const q = this.queues[i];
        if (q && q.ready && this.live() && q.needsNotification()) this.raise(INT_USED_BUFFER);
      },
      configChanged: () => this.configChanged(),
      needsReset: (reason) => this.needsReset(reason),
      live: () => this.live(),
      features: () => this.driverFeatures(),
    };
    device.attach(ctx);
  }

  private initial(configGeneration: number): Omit<VirtioMmioState<S>, 'queues' | 'device'> {
    return {
      version: 1, status: 0, deviceFeaturesSel: 0, driverFeaturesSel: 0, driverFeaturesLo: 0, driverFeaturesHi: 0,
      driverFeaturesBeyond: false, queueSel: 0, interruptStatus: 0, configGeneration,
    };
  }

  // ---------------------------------------------------------------- state seen by the host

  get status(): number { return this.s.status; }
  get interruptStatus(): number { return this.s.interruptStatus; }
  get configGeneration(): number { return this.s.configGeneration; }
  /** The level last driven on the interrupt line. */
  get irqLevel(): boolean { return this.line; }
  /** Why DEVICE_NEEDS_RESET was last set (null if never since construction). */
  get lastError(): string | null { return this.lastFault; }

  /** The device may use its queues: DRIVER_OK set, FAILED and DEVICE_NEEDS_RESET clear. */
  live(): boolean {
    return (this.s.status & (STATUS_DRIVER_OK | STATUS_FAILED | STATUS_DEVICE_NEEDS_RESET)) === STATUS_DRIVER_OK;
  }

  driverFeatures(): bigint {
    return (BigInt(this.s.driverFeaturesHi) << 32n) | BigInt(this.s.driverFeaturesLo);
  }

  // ---------------------------------------------------------------- MMIO

  read(off: number, size: AccessSize): bigint | null {
    if (off >= REG_CONFIG) return this.readConfig(off - REG_CONFIG, size);
    if (size !== 4 || off % 4) return 0n;
    return BigInt(this.readRegister(off) >>> 0);
  }

  write(off: number, size: AccessSize, value: bigint): boolean {
    if (off >= REG_CONFIG) {
      this.writeConfig(off - REG_CONFIG, size, value);
      return true;
    }
    if (size === 4 && off % 4 === 0) this.writeRegister(off, u32(value));
    return true;
  }

  private selectedQueue(): Virtqueue | undefined {
    return this.queues[this.s.queueSel];
  }

  private readRegister(off: number): number {
    const s = this.s;
    switch (off) {
      case REG_MAGIC_VALUE: return MMIO_MAGIC;
      case REG_VERSION: return MMIO_VERSION;
      case REG_DEVICE_ID: return this.device.deviceId;
      case REG_VENDOR_ID: return this.vendorId;
      case REG_DEVICE_FEATURES:
        if (s.deviceFeaturesSel > 1) return 0;
        return u32(this.offeredFeatures >> BigInt(32 * s.deviceFeaturesSel));
      case REG_QUEUE_NUM_MAX: return this.selectedQueue()?.maxSize ?? 0;
      case REG_QUEUE_READY: return this.selectedQueue()?.ready ? 1 : 0;
      case REG_INTERRUPT_STATUS: return s.interruptStatus;
      case REG_STATUS: return s.status;
      // No shared memory regions: a non-existent region reads as length and base -1.
      case REG_SHM_LEN_LOW: case REG_SHM_LEN_HIGH: case REG_SHM_BASE_LOW: case REG_SHM_BASE_HIGH: return 0xffffffff;
      case REG_CONFIG_GENERATION: return s.configGeneration;
      default: return 0; // write-only, reserved, QueueReset (VIRTIO_F_RING_RESET is not offered)
    }
  }

  private writeRegister(off: number, v: number): void {
    const s = this.s;
    switch (off) {
      case REG_DEVICE_FEATURES_SEL: s.deviceFeaturesSel = v; break;
      case REG_DRIVER_FEATURES_SEL: s.driverFeaturesSel = v; break;
      case REG_DRIVER_FEATURES:
        // The driver MUST NOT accept new features after FEATURES_OK (3.1.1).
        if (s.status & STATUS_FEATURES_OK) break;
        if (s.driverFeaturesSel === 0) s.driverFeaturesLo = v;
        else if (s.driverFeaturesSel === 1) s.driverFeaturesHi = v;
        else if (v !== 0) s.driverFeaturesBeyond = true;
        break;
      case REG_QUEUE_SEL: s.queueSel = v; break;
      case REG_QUEUE_NUM: this.queueSetup((q) => q.setSize(v)); break;
      case REG_QUEUE_DESC_LOW: this.queueSetup((q) => q.setDesc(0, v)); break;
      case REG_QUEUE_DESC_HIGH: this.queueSetup((q) => q.setDesc(1, v)); break;
      case REG_QUEUE_DRIVER_LOW: this.queueSetup((q) => q.setDriver(0, v)); break;
      case REG_QUEUE_DRIVER_HIGH: this.queueSetup((q) => q.setDriver(1, v)); break;
      case REG_QUEUE_DEVICE_LOW: this.queueSetup((q) => q.setDevice(0, v)); break;
      case REG_QUEUE_DEVICE_HIGH: this.queueSetup((q) => q.setDevice(1, v)); break;
      case REG_QUEUE_READY: {
        const q = this.selectedQueue();
        if (!q) break;
        if (v === 0) { q.disable(); break; }
        // Queues are set up before DRIVER_OK; without VIRTIO_F_RING_RESET there is no re-enabling a live device's queue.
        if (q.ready || (s.status & STATUS_DRIVER_OK)) break;
        const why = q.enable();
        if (why) this.needsReset(why);
        break;
      }
      case REG_QUEUE_NOTIFY: {
        // Without VIRTIO_F_NOTIFICATION_DATA the value is the queue index.
        const q = this.queues[v];
        if (q && q.ready && this.live()) this.device.notify(v);
        break;
      }
      case REG_INTERRUPT_ACK:
        s.interruptStatus &= ~v & (INT_USED_BUFFER | INT_CONFIG_CHANGE);
        this.updateLine();
        break;
      case REG_STATUS: this.writeStatus(v); break;
      default: break; // read-only, reserved, SHMSel, QueueReset
    }
  }

  /** Queue size and addresses: only while the selected queue is not ready and before DRIVER_OK. */
  private queueSetup(f: (q: Virtqueue) => void): void {
    const q = this.selectedQueue();
    if (q && !q.ready && !(this.s.status & STATUS_DRIVER_OK)) f(q);
  }

  private readConfig(off: number, size: AccessSize): bigint {
    if (off % size || off + size > this.device.configSize) return 0n;
    if (size === 8) {
      // Two 32-bit halves (a 64-bit field is not atomic for the driver either, 2.5).
      const lo = this.device.readConfig(off, 4) >>> 0;
      const hi = this.device.readConfig(off + 4, 4) >>> 0;
      return (BigInt(hi) << 32n) | BigInt(lo);
    }
    return BigInt(this.device.readConfig(off, size as ConfigAccessSize) >>> 0);
  }

  private writeConfig(off: number, size: AccessSize, value: bigint): void {
    if (off % size || off + size > this.device.configSize) return;
    if (size === 8) {
      this.device.writeConfig(off, 4, u32(value));
      this.device.writeConfig(off + 4, 4, u32(value >> 32n));
      return;
    }
    this.device.writeConfig(off, size as ConfigAccessSize, u32(value));
  }

  // ---------------------------------------------------------------- status (2.1, 3.1)

  private writeStatus(v: number): void {
    if (v === 0) { this.reset(); return; }
    const s = this.s;
    const old = s.status;
    const had = old & STATUS_DRIVER_BITS;
    // DEVICE_NEEDS_RESET belongs to the device; SUSPEND needs VIRTIO_F_SUSPEND; other bits are reserved.
    let want = v & STATUS_DRIVER_BITS;
    // The driver MUST NOT clear a status bit (2.1.1): such a write is ignored,
    // except that a FAILED in it is still taken (the driver gave up).
    if ((want & had) !== had) {
      s.status |= want & STATUS_FAILED;
      return;
    }
    // The initialization sequence (3.1.1): ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK.
    // DRIVER without ACKNOWLEDGE is taken as both: U-Boot resets the device
    // between its bus probe (ACKNOWLEDGE) and its driver probe (DRIVER), and
    // QEMU's devices accept that; nothing is lost by inferring the first step.
    if (want === STATUS_DRIVER && had === 0) want |= STATUS_ACKNOWLEDGE;
    if ((want & STATUS_DRIVER) && !(want & STATUS_ACKNOWLEDGE)) return;
    if ((want & STATUS_FEATURES_OK) && !(want & STATUS_DRIVER)) return;
    if ((want & STATUS_DRIVER_OK) && !(want & STATUS_FEATURES_OK)) return;
    if ((want & STATUS_FEATURES_OK) && !(had & STATUS_FEATURES_OK)) {
      if (this.featuresAcceptable()) {
        const f = this.driverFeatures();
        for (const q of this.queues) q.setFeatures((f & feature(F_EVENT_IDX)) !== 0n, (f & feature(F_INDIRECT_DESC)) !== 0n);
      } else {
        // The device MUST fail to set FEATURES_OK (2.2.2); DRIVER_OK cannot follow.
        want &= ~(STATUS_FEATURES_OK | STATUS_DRIVER_OK);
      }
    }
    s.status = want | (old & STATUS_DEVICE_NEEDS_RESET);
    if ((want & STATUS_DRIVER_OK) && !(had & STATUS_DRIVER_OK)) {
      // An error found during setup is reported once the driver can take the notification (2.1.2).
      if (s.status & STATUS_DEVICE_NEEDS_RESET) this.raise(INT_CONFIG_CHANGE);
      else if (this.live()) this.device.activate();
    }
  }

  private featuresAcceptable(): boolean {
    const f = this.driverFeatures();
    if (this.s.driverFeaturesBeyond) return false;
    if ((f & ~this.offeredFeatures) !== 0n) return false;
    if ((f & feature(F_VERSION_1)) === 0n) return false;
    return this.device.acceptFeatures ? this.device.acceptFeatures(f) : true;
  }

  /** Device reset: status 0, features, queues and interrupts cleared; the device forgets its driver. */
  private reset(): void {
    this.s = this.initial(this.s.configGeneration);
    for (const q of this.queues) q.reset();
    this.updateLine();
    this.device.reset();
  }

  private needsReset(reason: string): void {
    this.lastFault = reason;
    this.onError?.(reason);
    const s = this.s;
    if (s.status & STATUS_DEVICE_NEEDS_RESET) return;
    s.status |= STATUS_DEVICE_NEEDS_RESET;
    // With DRIVER_OK set, the device MUST send a configuration change notification (2.1.2).
    if (s.status & STATUS_DRIVER_OK) this.raise(INT_CONFIG_CHANGE);
  }

  private configChanged(): void {
    this.s.configGeneration = (this.s.configGeneration + 1) >>> 0;
    if ((this.s.status & (STATUS_DRIVER_OK | STATUS_FAILED)) === STATUS_DRIVER_OK) this.raise(INT_CONFIG_CHANGE);
  }

  // ---------------------------------------------------------------- interrupts (4.2.3.4)

  private raise(bit: number): void {
    this.s.interruptStatus |= bit;
    this.updateLine();
  }

  private updateLine(): void {
    const level = this.s.interruptStatus !== 0;
    if (level !== this.line) {
      this.line = level;
      this.irq(level);
    }
  }

  // ---------------------------------------------------------------- snapshots

  save(): VirtioMmioState<S> {
    return { ...this.s, queues: this.queues.map((q) => q.save()), device: this.device.save() };
  }

  /** Restores a saved state (the device must be of the same kind); drives the interrupt line to the restored level. */
  restore(state: VirtioMmioState<S>): void {
    if (state.version !== 1) throw new RangeError(`virtio-mmio state version ${String(state.version)}`);
    const isU32 = (n: unknown): boolean => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
    if (!isU32(state.status) || state.status > 0xff || !isU32(state.deviceFeaturesSel) || !isU32(state.driverFeaturesSel)
      || !isU32(state.driverFeaturesLo) || !isU32(state.driverFeaturesHi) || typeof state.driverFeaturesBeyond !== 'boolean'
      || !isU32(state.queueSel) || !isU32(state.interruptStatus) || state.interruptStatus > 3 || !isU32(state.configGeneration)
      || !Array.isArray(state.queues) || state.queues.length !== this.queues.length) {
      throw new RangeError(`virtio-mmio (${this.device.name}): malformed state`);
    }
    state.queues.forEach((qs, i) => this.queues[i]!.restore(qs));
    this.device.restore(state.device);
    const { queues: _q, device: _d, ...rest } = state;
    this.s = { ...rest };
    this.line = this.s.interruptStatus !== 0;
    this.irq(this.line);
  }
}
