/**
 * NS16550A UART (QEMU virt's UART0, reg-shift 0, 1-byte registers): a 16-byte
 * receive FIFO, transmit straight to the host, interrupts for received data and
 * transmitter empty. Register names from the 16550 data sheet.
 */
import type { AccessSize, MmioDevice } from './device.js';

const RBR_THR_DLL = 0, IER_DLM = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;
const IER_ERBFI = 1, IER_ETBEI = 2;
const IIR_NO_INT = 1, IIR_THRI = 2, IIR_RDI = 4, IIR_FIFO = 0xc0;
const LCR_DLAB = 0x80;
const LSR_DR = 1, LSR_THRE = 0x20, LSR_TEMT = 0x40;
const FIFO_SIZE = 16;
const MCR_LOOP = 0x10;
/** Bytes held for the guest beyond the FIFO before the host is told to pause input. */
const RX_BACKLOG = 4096;

export interface UartState {
  readonly version: 1;
  ier: number; lcr: number; mcr: number; scr: number; fcr: number; dll: number; dlm: number;
  /** THR empty interrupt pending (cleared by reading IIR or writing THR). */
  thriPending: boolean;
  /** The receive FIFO (at most 16 bytes). */
  rx: number[];
  /**
   * Host input not yet in the FIFO: it moves in only while the guest listens (receive
   * interrupt enabled, or polling LSR), as a serial line with flow control would hold it,
   * so input typed before the driver is ready is not thrown away by its FIFO reset.
   */
  backlog: number[];
}

export class Uart16550 implements MmioDevice {
  readonly name = 'uart';
  readonly size = 0x100;
  private s: UartState = { version: 1, ier: 0, lcr: 0, mcr: 0, scr: 0, fcr: 0, dll: 12, dlm: 0, thriPending: false, rx: [], backlog: [] };

  /**
   * @param transmit receives every byte the guest sends
   * @param irq sets the level of the UART's interrupt line
   */
  constructor(readonly base: number, private readonly transmit: (byte: number) => void, private readonly irq: (level: boolean) => void) {}

  /** Host input: queue bytes for the guest. Returns false when the backlog is full (the caller should pause). */
  receive(bytes: Uint8Array): boolean {
    for (const b of bytes) this.s.backlog.push(b);
    if (this.s.ier & IER_ERBFI) this.refill();
    this.update();
    return this.s.backlog.length < RX_BACKLOG;
  }

  read(off: number, size: AccessSize): bigint | null {
    if (size !== 1) return null;
    const s = this.s;
    let v = 0;
    switch (off) {
      case RBR_THR_DLL:
        if (s.lcr & LCR_DLAB) v = s.dll;
        else { v = s.rx.shift() ?? 0; this.refill(); this.update(); }
        break;
      case IER_DLM: v = s.lcr & LCR_DLAB ? s.dlm : s.ier; break;
      case IIR_FCR: {
        v = this.iir();
        if (v === IIR_THRI) s.thriPending = false;
        v |= s.fcr & 1 ? IIR_FIFO : 0;
        this.update();
        break;
      }
      case LCR: v = s.lcr; break;
      case MCR: v = s.mcr; break;
      case LSR: this.refill(); v = LSR_THRE | LSR_TEMT | (s.rx.length > 0 ? LSR_DR : 0); break;
      // A modem is "connected" (DCD, DSR, CTS). In loopback the modem outputs feed the
      // inputs: DTR→DSR, RTS→CTS, OUT1→RI, OUT2→DCD (16550 data sheet).
      case MSR:
        v = s.mcr & MCR_LOOP
          ? ((s.mcr & 1) << 5) | ((s.mcr & 2) << 3) | ((s.mcr & 4) << 4) | ((s.mcr & 8) << 4)
          : 0xb0;
        break;
      case SCR: v = s.scr; break;
      default: return 0n;
    }
    return BigInt(v);
  }

  write(off: number, size: AccessSize, value: bigint): boolean {
    if (size !== 1) return false;
    const s = this.s;
    const v = Number(value & 0xffn);
    switch (off) {
      case RBR_THR_DLL:
        if (s.lcr & LCR_DLAB) s.dll = v;
        else {
          if (s.mcr & MCR_LOOP) s.rx.push(v);
          else this.transmit(v);
          // The byte leaves at once: the transmitter is empty again.
          s.thriPending = true;
        }
        break;
      case IER_DLM:
        if (s.lcr & LCR_DLAB) s.dlm = v;
        else {
          const was = s.ier;
          s.ier = v & 0x0f;
          // Enabling ETBEI with an empty transmitter raises THRI (16550 behaviour Linux relies on).
          if (!(was & IER_ETBEI) && (s.ier & IER_ETBEI)) s.thriPending = true;
          if (s.ier & IER_ERBFI) this.refill();
        }
        break;
      case IIR_FCR:
        s.fcr = v & 0xc9;
        if (v & 2) s.rx.length = 0; // clear receive FIFO
        break;
      case LCR: s.lcr = v; break;
      case MCR: s.mcr = v & 0x1f; break;
      case SCR: s.scr = v; break;
      default: break;
    }
    this.update();
    return true;
  }

  /** Moves host input into the receive FIFO while it has room. */
  private refill(): void {
    const s = this.s;
    while (s.rx.length < FIFO_SIZE && s.backlog.length > 0) s.rx.push(s.backlog.shift()!);
  }

  private iir(): number {
    const s = this.s;
    if ((s.ier & IER_ERBFI) && s.rx.length > 0) return IIR_RDI;
    if ((s.ier & IER_ETBEI) && s.thriPending) return IIR_THRI;
    return IIR_NO_INT;
  }

  private update(): void {
    this.irq(this.iir() !== IIR_NO_INT);
  }

  /** Bytes waiting for the guest. */
  pending(): number {
    return this.s.rx.length + this.s.backlog.length;
  }

  save(): UartState {
    return { ...this.s, rx: [...this.s.rx], backlog: [...this.s.backlog] };
  }

  restore(state: UartState): void {
    if (state.version !== 1) throw new RangeError(`uart state version ${String(state.version)}`);
    this.s = { ...state, rx: [...state.rx], backlog: [...state.backlog] };
    this.update();
  }
}

