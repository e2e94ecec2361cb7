/**
 * virtio-input (virtio 1.2, section 5.8; device ID 18): evdev events over
 * virtio. Queue 0 (eventq) carries events to the guest in device-writable
 * buffers of one `struct virtio_input_event {le16 type; le16 code; le32 value}`
 * each; queue 1 (statusq) carries LED and similar feedback from the guest,
 * which Disco takes and ignores.
 *
 * `VirtioInput` is a generic input device described by its identity and
 * supported event codes; `VirtioPowerButton` is the one Disco's board uses: a
 * KEY_POWER button for graceful shutdown. Linux drives it with the
 * `virtio_input` module (plus `virtio_mmio`, and `evdev` for /dev/input/event*).
 *
 * Events wait while the guest has no buffers (before its driver loads, or when
 * the eventq is empty), grouped into updates that end with SYN_REPORT: an
 * update is delivered when the eventq holds enough buffers for all of it
 * (5.8.6.2: a device SHOULD NOT drop or split a sequence).
 */
import { DEVICE_ID_INPUT } from './constants.js';
import type { ConfigAccessSize, VirtioDevice, VirtioDeviceContext } from './device.js';

// Linux input-event-codes.h (the evdev ABI the spec refers to).
export const EV_SYN = 0x00;
export const EV_KEY = 0x01;
export const SYN_REPORT = 0;
export const KEY_POWER = 116;
export const BUS_VIRTUAL = 0x06;
export const BUS_HOST = 0x19;

// enum virtio_input_config_select (5.8.4).
export const VIRTIO_INPUT_CFG_UNSET = 0x00;
export const VIRTIO_INPUT_CFG_ID_NAME = 0x01;
export const VIRTIO_INPUT_CFG_ID_SERIAL = 0x02;
export const VIRTIO_INPUT_CFG_ID_DEVIDS = 0x03;
export const VIRTIO_INPUT_CFG_PROP_BITS = 0x10;
export const VIRTIO_INPUT_CFG_EV_BITS = 0x11;
export const VIRTIO_INPUT_CFG_ABS_INFO = 0x12;

/** struct virtio_input_config: select, subsel, size, reserved[5], then a 128-byte union. */
export const INPUT_CONFIG_SIZE = 8 + 128;
const CFG_SELECT = 0, CFG_SUBSEL = 1, CFG_SIZE = 2, CFG_UNION = 8;
/** Bytes of struct virtio_input_event. */
export const INPUT_EVENT_SIZE = 8;
const EVENTQ = 0, STATUSQ = 1;
/** Events held for the guest at most; further updates are dropped whole. */
const MAX_PENDING = 256;

export interface InputEvent {
  readonly type: number;
  readonly code: number;
  /** Signed 32-bit (evdev's __s32). */
  readonly value: number;
}

export interface InputIdentity {
  /** ID_NAME, at most 128 bytes of UTF-8. */
  readonly name: string;
  /** ID_SERIAL, at most 128 bytes of UTF-8. */
  readonly serial: string;
  /** ID_DEVIDS. */
  readonly bustype: number;
  readonly vendor: number;
  readonly product: number;
  readonly version: number;
  /** PROP_BITS: INPUT_PROP_* numbers. */
  readonly props: readonly number[];
  /** EV_BITS: for each event type, the codes the device reports. */
  readonly events: ReadonlyMap<number, readonly number[]>;
}

export interface VirtioInputState {
  readonly version: 1;
  select: number;
  subsel: number;
  /** Events waiting for eventq buffers: [type, code, value]. */
  pending: [number, number, number][];
}

function bitmap(bits: readonly number[]): Uint8Array {
  let top = -1;
  for (const b of bits) top = Math.max(top, b);
  const out = new Uint8Array(top < 0 ? 0 : (top >> 3) + 1);
  for (const b of bits) out[b >> 3]! |= 1 << (b & 7);
  return out;
}

export class VirtioInput implements VirtioDevice<VirtioInputState> {
  readonly deviceId = DEVICE_ID_INPUT;
  readonly features = 0n;
  readonly queueSizes: readonly number[] = [64, 64];
  readonly configSize = INPUT_CONFIG_SIZE;
  private ctx: VirtioDeviceContext | null = null;
  private select = 0;
  private subsel = 0;
  private pending: [number, number, number][] = [];
  private readonly nameBytes: Uint8Array;
  private readonly serial: Uint8Array;

  constructor(readonly name: string, private readonly id: InputIdentity) {
    const enc = new TextEncoder();
    this.nameBytes = enc.encode(id.name);
    this.serial = enc.encode(id.serial);
    if (this.nameBytes.length > 128 || this.serial.length > 128) throw new RangeError('virtio-input name and serial are at most 128 bytes');
    for (const [type, codes] of id.events) {
      if (type < 0 || type > 0xff || codes.some((c) => !Number.isInteger(c) || c < 0 || c >= 1024)) throw new RangeError(`virtio-input: bad event codes for type ${type}`);
    }
  }

  /** The guest's driver has the device running (DRIVER_OK): events will be read. */
  driverReady(): boolean {
    return this.ctx?.live() ?? false;
  }

  attach(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
  }

  // ---------------------------------------------------------------- host side

  /**
   * Queues one input update (the events, then SYN_REPORT) for the guest and
   * delivers what the eventq has room for. False if too many events are
   * already waiting (the whole update is dropped).
   */
  send(events: readonly InputEvent[]): boolean {
    const update: [number, number, number][] = events.map((e) => [e.type & 0xffff, e.code & 0xffff, e.value | 0]);
    update.push([EV_SYN, SYN_REPORT, 0]);
    if (this.pending.length + update.length > MAX_PENDING) return false;
    this.pending.push(...update);
    this.deliver();
    return true;
  }

  /** Events not yet delivered to the guest. */
  get pendingEvents(): number {
    return this.pending.length;
  }

  // ---------------------------------------------------------------- configuration space (5.8.4)

  /** The union's contents for the current select/subsel (its length is `size`). */
  private payload(): Uint8Array {
    const id = this.id;
    switch (this.select) {
      case VIRTIO_INPUT_CFG_ID_NAME: return this.subsel === 0 ? this.nameBytes : new Uint8Array(0);
      case VIRTIO_INPUT_CFG_ID_SERIAL: return this.subsel === 0 ? this.serial : new Uint8Array(0);
      case VIRTIO_INPUT_CFG_ID_DEVIDS: {
        if (this.subsel !== 0) return new Uint8Array(0);
        const b = new Uint8Array(8);
        const v = new DataView(b.buffer);
        v.setUint16(0, id.bustype, true);
        v.setUint16(2, id.vendor, true);
        v.setUint16(4, id.product, true);
        v.setUint16(6, id.version, true);
        return b;
      }
      case VIRTIO_INPUT_CFG_PROP_BITS: return this.subsel === 0 ? bitmap(id.props) : new Uint8Array(0);
      case VIRTIO_INPUT_CFG_EV_BITS: return bitmap(id.events.get(this.subsel) ?? []);
      // No absolute axes; size 0 for anything unsupported (5.8.5.2).
      default: return new Uint8Array(0);
    }
  }

  private configByte(off: number): number {
    switch (off) {
      case CFG_SELECT: return this.select;
      case CFG_SUBSEL: return this.subsel;
      case CFG_SIZE: return this.payload().length;
      default: return off >= CFG_UNION ? this.payload()[off - CFG_UNION] ?? 0 : 0;
    }
  }

  readConfig(offset: number, size: ConfigAccessSize): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.configByte(offset + i);
    return v;
  }

  writeConfig(offset: number, size: ConfigAccessSize, value: number): void {
    // Only select and subsel are writable (5.8.5.1).
    for (let i = 0; i < size; i++) {
      const b = (value >>> (8 * i)) & 0xff;
      if (offset + i === CFG_SELECT) this.select = b;
      else if (offset + i === CFG_SUBSEL) this.subsel = b;
    }
  }

  // ---------------------------------------------------------------- queues

  activate(): void {
    this.deliver();
    this.drainStatus();
  }

  notify(index: number): void {
    if (index === EVENTQ) this.deliver();
    else if (index === STATUSQ) this.drainStatus();
  }

  reset(): void {
    // Waiting events belong to the host (a button pressed before the driver
    // loaded is still pressed); only what the driver set is forgotten.
    this.select = 0;
    this.subsel = 0;
  }

  /** Moves waiting events into eventq buffers, one update at a time. */
  private deliver(): void {
    const ctx = this.ctx;
    const q = ctx?.queue(EVENTQ);
    if (!ctx || !q) return;
    let used = false;
    const ev = new Uint8Array(INPUT_EVENT_SIZE);
    const view = new DataView(ev.buffer);
    // Bounded: the guest may keep adding buffers from another hart while we look.
    outer: for (let rounds = 0; this.pending.length > 0 && rounds < 4 * q.size + 4; rounds++) {
      let n = this.pending.findIndex((e) => e[0] === EV_SYN && e[1] === SYN_REPORT) + 1;
      if (n === 0) n = this.pending.length;
      const room = q.available();
      // A whole update at a time, unless the ring could never hold it.
      if (room === 0 || (room < n && room < q.size)) {
        // Ask for the next buffer; if some arrived meanwhile, look again.
        if (q.armNotification()) continue;
        break;
      }
      for (let k = 0; k < n; k++) {
        const chain = q.pop();
        if (!chain) break outer;
        const e = this.pending[0]!;
        if (chain.writableBytes < INPUT_EVENT_SIZE) {
          // Too small for an event (5.8.6.1 forbids it): give it back unused.
          q.push(chain.head, 0);
          used = true;
          continue outer;
        }
        view.setUint16(0, e[0], true);
        view.setUint16(2, e[1], true);
        view.setInt32(4, e[2], true);
        const written = q.write(chain, ev);
        if (written < 0) break outer;
        q.push(chain.head, written);
        used = true;
        this.pending.shift();
      }
    }
    if (used) ctx.usedBuffers(EVENTQ);
  }

  /** Takes and returns whatever the guest put in the statusq. */
  private drainStatus(): void {
    const ctx = this.ctx;
    const q = ctx?.queue(STATUSQ);
    if (!ctx || !q) return;
    let used = false;
    for (let i = 0; i < q.size; i++) {
      const chain = q.pop();
      if (!chain) break;
      q.push(chain.head, 0);
      used = true;
    }
    if (used) ctx.usedBuffers(STATUSQ);
  }

  // ---------------------------------------------------------------- snapshots

  save(): VirtioInputState {
    return { version: 1, select: this.select, subsel: this.subsel, pending: this.pending.map((e) => [e[0], e[1], e[2]]) };
  }

  restore(state: VirtioInputState): void {
    if (state.version !== 1) throw new RangeError(`virtio-input state version ${String(state.version)}`);
    const byte = (n: unknown): boolean => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xff;
    const ok = byte(state.select) && byte(state.subsel) && Array.isArray(state.pending) && state.pending.length <= MAX_PENDING
      && state.pending.every((e) => Array.isArray(e) && e.length === 3
        && Number.isInteger(e[0]) && e[0] >= 0 && e[0] <= 0xffff && Number.isInteger(e[1]) && e[1] >= 0 && e[1] <= 0xffff
        && Number.isInteger(e[2]) && e[2] === (e[2] | 0));
    if (!ok) throw new RangeError('virtio-input: malformed state');
    this.select = state.select;
    this.subsel = state.subsel;
    this.pending = state.pending.map((e) => [e[0], e[1], e[2]]);
  }
}

/** The power button: KEY_POWER (and EV_SYN), named "Disco Power Button". */
export class VirtioPowerButton extends VirtioInput {
  constructor() {
    super('power-button', {
      name: 'Disco Power Button',
      serial: 'disco-power-0',
      bustype: BUS_VIRTUAL,
      vendor: 0x4453, // "DS"
      product: 0x0001,
      version: 0x0001,
      props: [],
      events: new Map([[EV_SYN, [SYN_REPORT]], [EV_KEY, [KEY_POWER]]]),
    });
  }

  /** A press and release: KEY_POWER 1, SYN_REPORT, KEY_POWER 0, SYN_REPORT. False if too many events wait already. */
  press(): boolean {
    if (this.pendingEvents + 4 > MAX_PENDING) return false;
    return this.send([{ type: EV_KEY, code: KEY_POWER, value: 1 }]) && this.send([{ type: EV_KEY, code: KEY_POWER, value: 0 }]);
  }
}
