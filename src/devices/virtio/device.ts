/**
 * A virtio device as its transport sees it (the Firecracker layering: the
 * device knows its queues, features and configuration space; the transport
 * knows registers and the status state machine; a back end knows the host
 * resource).
 */
import type { Virtqueue } from './queue.js';

/** What the transport offers the device it carries. */
export interface VirtioDeviceContext {
  /**
   * Queue `index` while the device may use it (DRIVER_OK set, neither FAILED
   * nor DEVICE_NEEDS_RESET, and the driver enabled that queue), else null.
   */
  queue(index: number): Virtqueue | null;
  /** After pushing used buffers to queue `index`: a used buffer interrupt, unless the driver suppressed it. */
  usedBuffers(index: number): void;
  /** The configuration space changed: a new ConfigGeneration and a configuration change interrupt. */
  configChanged(): void;
  /** An error the device cannot recover from without a reset: DEVICE_NEEDS_RESET (2.1.2). */
  needsReset(reason: string): void;
  /** True while the device may use its queues. */
  live(): boolean;
  /** The features the driver accepted (meaningful once FEATURES_OK is set). */
  features(): bigint;
}

export type ConfigAccessSize = 1 | 2 | 4;

export interface VirtioDevice<S = unknown> {
  readonly name: string;
  /** Virtio device ID (section 5), e.g. 18 for input. */
  readonly deviceId: number;
  /** Device-type feature bits offered; the transport adds VERSION_1, INDIRECT_DESC and EVENT_IDX. */
  readonly features: bigint;
  /** The maximum size of each queue (powers of 2, at most 32768); the length is the number of queues. */
  readonly queueSizes: readonly number[];
  /** Bytes of device configuration space (at MMIO offset 0x100). */
  readonly configSize: number;
  /** Called once, by the transport that carries the device. */
  attach(ctx: VirtioDeviceContext): void;
  /** An optional veto at FEATURES_OK, after the transport's own checks (offered, VERSION_1). */
  acceptFeatures?(features: bigint): boolean;
  /** A configuration space read, little-endian; the transport guarantees offset + size <= configSize. */
  readConfig(offset: number, size: ConfigAccessSize): number;
  /** A configuration space write; the transport guarantees offset + size <= configSize. */
  writeConfig(offset: number, size: ConfigAccessSize, value: number): void;
  /** DRIVER_OK was set: the device is live and may look at its queues. */
  activate(): void;
  /** An available buffer notification for queue `index` (only while live). */
  notify(index: number): void;
  /** Device reset (the driver wrote 0 to Status): forget what the driver set up. */
  reset(): void;
  save(): S;
  restore(state: S): void;
  /**
   * Releases the back end's host resources (files, sockets, timers) when the VM
   * goes away; completions still in flight are dropped. Optional: devices with
   * no host resources have nothing to close.
   */
  close?(): Promise<void>;
}

/** A little-endian config-space read from a device's configuration bytes (bytes past the end read as 0). */
export function readConfigBytes(config: Uint8Array, offset: number, size: ConfigAccessSize): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = v * 256 + (config[offset + i] ?? 0);
  return v;
}
