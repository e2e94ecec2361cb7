/**
 * Goldfish RTC ("google,goldfish-rtc", QEMU virt at 0x101000): nanoseconds since
 * the epoch, read low word first (which latches the high word), with one alarm.
 */
import type { AccessSize, MmioDevice } from './device.js';

const TIME_LOW = 0x00, TIME_HIGH = 0x04, ALARM_LOW = 0x08, ALARM_HIGH = 0x0c, IRQ_ENABLED = 0x10,
  CLEAR_ALARM = 0x14, ALARM_STATUS = 0x18, CLEAR_INTERRUPT = 0x1c;

export interface GoldfishRtcState {
  readonly version: 1;
  /** Guest time minus host time, ns (the guest may set the clock). */
  offsetNs: string;
  alarmNs: string;
  alarmArmed: boolean;
  irqEnabled: boolean;
  irqPending: boolean;
  /** TIME_HIGH latched by a TIME_LOW read, or written before TIME_LOW. */
  latchedHigh: string;
  alarmLow: string;
}

export class GoldfishRtc implements MmioDevice {
  readonly name = 'rtc';
  readonly size = 0x1000;
  private offset = 0n;
  private alarm = 0n;
  private armed = false;
  private irqEnabled = false;
  private irqPending = false;
  private latchedHigh = 0n;
  private alarmLow = 0n;

  constructor(readonly base: number, private readonly irq: (level: boolean) => void, private readonly hostNowNs: () => bigint = () => BigInt(Date.now()) * 1_000_000n) {}

  private now(): bigint {
    return this.hostNowNs() + this.offset;
  }

  /** Called periodically by the machine: fires a due alarm. */
  poll(): void {
    if (this.armed && this.now() >= this.alarm) {
      this.armed = false;
      this.irqPending = true;
      this.irq(this.irqEnabled);
    }
  }

  read(off: number, size: AccessSize): bigint | null {
    if (size !== 4) return null;
    switch (off) {
      case TIME_LOW: {
        const t = BigInt.asUintN(64, this.now());
        this.latchedHigh = t >> 32n;
        return t & 0xffffffffn;
      }
      case TIME_HIGH: return this.latchedHigh;
      case ALARM_LOW: return this.alarm & 0xffffffffn;
      case ALARM_HIGH: return (this.alarm >> 32n) & 0xffffffffn;
      case IRQ_ENABLED: return this.irqEnabled ? 1n : 0n;
      case ALARM_STATUS: return this.armed ? 1n : 0n;
      default: return 0n;
    }
  }

  write(off: number, size: AccessSize, value: bigint): boolean {
    if (size !== 4) return false;
    const v = value & 0xffffffffn;
    switch (off) {
      case TIME_LOW: {
        // Setting the time: high word first (stored in the latch), then low.
        const t = (this.latchedHigh << 32n) | v;
        this.offset = t - this.hostNowNs();
        break;
      }
      case TIME_HIGH: this.latchedHigh = v; break;
      case ALARM_LOW:
        this.alarmLow = v;
        this.alarm = (this.alarm & ~0xffffffffn) | v;
        this.armed = true;
        this.poll();
        break;
      case ALARM_HIGH: this.alarm = (v << 32n) | this.alarmLow; break;
      case IRQ_ENABLED: this.irqEnabled = (v & 1n) !== 0n; this.irq(this.irqEnabled && this.irqPending); break;
      case CLEAR_ALARM: this.armed = false; break;
      case CLEAR_INTERRUPT: this.irqPending = false; this.irq(false); break;
      default: break;
    }
    return true;
  }

  save(): GoldfishRtcState {
    return {
      version: 1, offsetNs: this.offset.toString(), alarmNs: this.alarm.toString(), alarmArmed: this.armed,
      irqEnabled: this.irqEnabled, irqPending: this.irqPending, latchedHigh: this.latchedHigh.toString(), alarmLow: this.alarmLow.toString(),
    };
  }

  restore(s: GoldfishRtcState): void {
    if (s.version !== 1) throw new RangeError(`rtc state version ${String(s.version)}`);
    this.offset = BigInt(s.offsetNs);
    this.alarm = BigInt(s.alarmNs);
    this.armed = s.alarmArmed;
    this.irqEnabled = s.irqEnabled;
    this.irqPending = s.irqPending;
    this.latchedHigh = BigInt(s.latchedHigh);
    this.alarmLow = BigInt(s.alarmLow);
    this.irq(this.irqEnabled && this.irqPending);
  }
}
