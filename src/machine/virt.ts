/**
 * The `virt` board: QEMU virt's memory map and interrupt numbers (brief,
 * section 5), so that guests built for QEMU's virt boot unchanged.
 *
 * One machine description (`describeVirt`) feeds both the device models on the
 * MMIO bus and the flattened device tree handed to the guest.
 */
import { accelerate, defaultJitMode, type Jit, type JitMode } from '../jit/index.js';
import { sumJitStats, type JitStats } from '../jit/engine.js';
import { Clock, MTIME_HZ, type ClockMode } from '../cpu/clock.js';
import { MIP_SSIP, PRIV_S } from '../cpu/csr-numbers.js';
import { Hart } from '../cpu/hart.js';
import { Clint, CLINT_SIZE } from '../devices/clint.js';
import { GoldfishRtc } from '../devices/goldfish-rtc.js';
import { Plic, PLIC_SIZE, PLIC_SOURCES } from '../devices/plic.js';
import { SifiveTest, type PowerEvent } from '../devices/syscon.js';
import { Uart16550 } from '../devices/uart16550.js';
import { VirtioMmioEmpty } from '../devices/virtio-mmio-empty.js';
import { VirtioBalloon } from '../devices/virtio/balloon.js';
import { VirtioConsole } from '../devices/virtio/console.js';
import type { VirtioDevice } from '../devices/virtio/device.js';
import { VirtioPowerButton } from '../devices/virtio/input.js';
import { pmapGuestMemory } from '../devices/virtio/pmap-memory.js';
import { VirtioMmioTransport } from '../devices/virtio/transport-mmio.js';
import { MachineError } from './errors.js';
import { createVirtioDevice } from './virtio-devices.js';
import type { VirtioDeviceSpec } from './virtio-spec.js';
import { MachineMemory, PAGE_SIZE } from '../memory/machine-memory.js';
import { Pmap } from '../memory/pmap.js';
import { MmioBus } from './bus.js';
import { isElf, parseElf } from './elf.js';
import { encodeFdt, empty, node, PhandleAllocator, str, u32, u64, type FdtNode } from './fdt.js';
import { HSM_STARTED, HSM_STOPPED, serveSbi, SRST_SHUTDOWN, type SbiPlatform } from './sbi.js';
import type { RunGate, RunGateSpec } from './run-gate.js';
import { VcpuThreads } from './vcpu-threads.js';
import { StealTime } from './steal-time.js';
import { enterSupervisor, prepareSupervisor } from './supervisor.js';
import { warmInterpreter } from '../cpu/warmup.js';

export const VIRT_MAP = {
  ROM: 0x1000,
  ROM_SIZE: 0xf000,
  TEST: 0x100000,
  RTC: 0x101000,
  CLINT: 0x2000000,
  PLIC: 0xc000000,
  UART0: 0x10000000,
  VIRTIO: 0x10001000,
  VIRTIO_COUNT: 8,
  DRAM: 0x80000000,
} as const;
export const VIRT_IRQ = { VIRTIO0: 1, UART0: 10, RTC: 11 } as const;
export const MAX_CPUS = 8;
/** The kernel's load address: DRAM + 2 MiB (Linux RISC-V boot protocol). */
export const KERNEL_OFFSET = 0x200000;
const UART_CLOCK_HZ = 3686400;

/** The extensions each hart implements, as the device tree names them. */
export const ISA_EXTENSIONS = ['i', 'm', 'a', 'f', 'd', 'c', 'zicntr', 'zicsr', 'zifencei', 'zihintpause', 'sstc'] as const;
export const ISA_STRING = 'rv64imafdc_zicntr_zicsr_zifencei_zihintpause_sstc';

export type DeviceSpec =
  | { readonly kind: 'clint'; readonly base: number; readonly size: number }
  | { readonly kind: 'plic'; readonly base: number; readonly size: number; readonly sources: number }
  | { readonly kind: 'uart'; readonly base: number; readonly size: number; readonly irq: number }
  | { readonly kind: 'rtc'; readonly base: number; readonly size: number; readonly irq: number }
  | { readonly kind: 'test'; readonly base: number; readonly size: number }
  /** A virtio-mmio slot and what it carries (null: an empty slot, DeviceID 0). */
  | { readonly kind: 'virtio-mmio'; readonly base: number; readonly size: number; readonly irq: number; readonly device: VirtioDeviceSpec | null };

export interface MachineDescription {
  readonly memory: { readonly base: number; readonly size: number };
  readonly cpus: number;
  readonly devices: readonly DeviceSpec[];
}

/**
 * The virt board with `virtio` in slots 0, 1, ... in the order given (the
 * command line puts drives first, then networks, then other devices, so a guest
 * that expects its disk in slot 0 finds it there); the power button takes the
 * last slot.
 */
export function describeVirt(memoryBytes: number, cpus: number, virtio: readonly VirtioDeviceSpec[] = []): MachineDescription {
  if (virtio.length > VIRT_MAP.VIRTIO_COUNT - 1) {
    throw new MachineError(`at most ${VIRT_MAP.VIRTIO_COUNT - 1} virtio devices fit in the board's slots (${virtio.length} requested)`);
  }
  const devices: DeviceSpec[] = [
    { kind: 'test', base: VIRT_MAP.TEST, size: 0x1000 },
    { kind: 'rtc', base: VIRT_MAP.RTC, size: 0x1000, irq: VIRT_IRQ.RTC },
    { kind: 'clint', base: VIRT_MAP.CLINT, size: CLINT_SIZE },
    { kind: 'plic', base: VIRT_MAP.PLIC, size: PLIC_SIZE, sources: PLIC_SOURCES - 1 },
    { kind: 'uart', base: VIRT_MAP.UART0, size: 0x100, irq: VIRT_IRQ.UART0 },
  ];
  for (let i = 0; i < VIRT_MAP.VIRTIO_COUNT; i++) {
    const device: VirtioDeviceSpec | null = i === VIRT_MAP.VIRTIO_COUNT - 1 ? { kind: 'power-button' } : virtio[i] ?? null;
    devices.push({ kind: 'virtio-mmio', base: VIRT_MAP.VIRTIO + i * 0x1000, size: 0x1000, irq: VIRT_IRQ.VIRTIO0 + i, device });
  }
  return { memory: { base: VIRT_MAP.DRAM, size: memoryBytes }, cpus, devices };
}

export interface Chosen {
  readonly bootargs: string;
  readonly initrd: { readonly start: number; readonly end: number } | null;
}

const hex = (n: number): string => n.toString(16);
const reg = (base: number, size: number) => u64(BigInt(base), BigInt(size));

/** The device tree of a machine description (Devicetree Specification v0.4; Linux RISC-V bindings). */
export function virtDeviceTree(desc: MachineDescription, chosen: Chosen): Uint8Array {
  const ph = new PhandleAllocator();
  const cpus: FdtNode[] = [];
  for (let h = 0; h < desc.cpus; h++) {
    const intc = ph.attach(`intc${h}`, node('interrupt-controller', {
      '#address-cells': u32(0),
      '#interrupt-cells': u32(1),
      'interrupt-controller': empty(),
      compatible: str('riscv,cpu-intc'),
    }));
    cpus.push(ph.attach(`cpu${h}`, node(`cpu@${h}`, {
      device_type: str('cpu'),
      reg: u32(h),
      status: str('okay'),
      compatible: str('riscv'),
      'riscv,isa': str(ISA_STRING),
      'riscv,isa-base': str('rv64i'),
      'riscv,isa-extensions': str(...ISA_EXTENSIONS),
      'mmu-type': str('riscv,sv48'),
    }, [intc])));
  }
  const cores = cpus.map((_, h) => node(`core${h}`, { cpu: u32(ph.get(`cpu${h}`)) }));
  const soc: FdtNode[] = [];
  const root: FdtNode[] = [];
  for (const d of desc.devices) {
    switch (d.kind) {
      case 'clint': {
        const ext: number[] = [];
        for (let h = 0; h < desc.cpus; h++) ext.push(ph.get(`intc${h}`), 3, ph.get(`intc${h}`), 7);
        soc.push(node(`clint@${hex(d.base)}`, {
          'interrupts-extended': u32(...ext), reg: reg(d.base, d.size), compatible: str('sifive,clint0', 'riscv,clint0'),
        }));
        break;
      }
      case 'plic': {
        const ext: number[] = [];
        for (let h = 0; h < desc.cpus; h++) ext.push(ph.get(`intc${h}`), 11, ph.get(`intc${h}`), 9);
        soc.push(ph.attach('plic', node(`plic@${hex(d.base)}`, {
          'riscv,ndev': u32(d.sources), reg: reg(d.base, d.size), 'interrupts-extended': u32(...ext),
          'interrupt-controller': empty(), compatible: str('sifive,plic-1.0.0', 'riscv,plic0'),
          '#address-cells': u32(0), '#interrupt-cells': u32(1),
        })));
        break;
      }
      case 'uart':
        soc.push(node(`serial@${hex(d.base)}`, {
          interrupts: u32(d.irq), 'interrupt-parent': u32(ph.get('plic')), 'clock-frequency': u32(UART_CLOCK_HZ),
          reg: reg(d.base, d.size), compatible: str('ns16550a'),
        }));
        break;
      case 'rtc':
        soc.push(node(`rtc@${hex(d.base)}`, {
          interrupts: u32(d.irq), 'interrupt-parent': u32(ph.get('plic')), reg: reg(d.base, d.size), compatible: str('google,goldfish-rtc'),
        }));
        break;
      case 'test':
        soc.push(ph.attach('test', node(`test@${hex(d.base)}`, { reg: reg(d.base, d.size), compatible: str('sifive,test1', 'sifive,test0', 'syscon') })));
        root.push(node('poweroff', { value: u32(0x5555), offset: u32(0), regmap: u32(ph.get('test')), compatible: str('syscon-poweroff') }));
        root.push(node('reboot', { value: u32(0x7777), offset: u32(0), regmap: u32(ph.get('test')), compatible: str('syscon-reboot') }));
        break;
      case 'virtio-mmio':
        soc.push(node(`virtio_mmio@${hex(d.base)}`, {
          interrupts: u32(d.irq), 'interrupt-parent': u32(ph.get('plic')), reg: reg(d.base, d.size), compatible: str('virtio,mmio'),
        }));
        break;
      default: {
        const never: never = d;
        throw new Error(`unknown device ${JSON.stringify(never)}`);
      }
    }
  }
  const uart = desc.devices.find((d) => d.kind === 'uart');
  const chosenProps: [string, ReturnType<typeof str>][] = [['bootargs', str(chosen.bootargs)]];
  if (uart) chosenProps.push(['stdout-path', str(`/soc/serial@${hex(uart.base)}`)]);
  if (chosen.initrd) {
    chosenProps.push(['linux,initrd-start', u64(BigInt(chosen.initrd.start))]);
    chosenProps.push(['linux,initrd-end', u64(BigInt(chosen.initrd.end))]);
  }
  const tree = node('', {
    '#address-cells': u32(2), '#size-cells': u32(2), compatible: str('riscv-virtio'), model: str('riscv-virtio,disco'),
  }, [
    ...root,
    node('chosen', chosenProps),
    node(`memory@${hex(desc.memory.base)}`, { device_type: str('memory'), reg: reg(desc.memory.base, desc.memory.size) }),
    node('cpus', { '#address-cells': u32(1), '#size-cells': u32(0), 'timebase-frequency': u32(MTIME_HZ) },
      [...cpus, node('cpu-map', {}, [node('cluster0', {}, cores)])]),
    node('soc', { '#address-cells': u32(2), '#size-cells': u32(2), compatible: str('simple-bus'), ranges: empty() }, soc),
  ]);
  return encodeFdt(tree, { phandles: ph });
}

// ------------------------------------------------------------------ the machine

export { MachineError };

export type BootSource =
  /** Disco is the firmware: SBI in the hypervisor, the kernel entered in S-mode. */
  | { readonly kind: 'sbi' }
  /** M-mode firmware (e.g. OpenSBI fw_jump / fw_dynamic) at DRAM, then the kernel. */
  | { readonly kind: 'firmware'; readonly image: Uint8Array }
  /** No firmware: the kernel is a bare-metal ELF entered in M-mode. */
  | { readonly kind: 'none' };

export interface VirtConfig {
  readonly memoryBytes: number;
  readonly cpus: number;
  readonly clock: ClockMode;
  readonly boot: BootSource;
  readonly kernel: Uint8Array | null;
  readonly initrd: Uint8Array | null;
  readonly append: string;
  /** Bytes the guest writes to its console. */
  readonly output: (bytes: Uint8Array) => void;
  /** The VM's name (MAC addresses and host socket paths derive from it). */
  readonly name: string;
  /** Devices for virtio slots 0, 1, ... (see describeVirt). */
  readonly virtio: readonly VirtioDeviceSpec[];
  /** Diagnostic lines for the host (device errors); default: stderr. */
  readonly log?: (line: string) => void;
  /** Binary translation (default: DISCO_JIT, else on). */
  readonly jit?: JitMode;
  /** The host's machine-memory pool (the hypervisor's, shared by its VMs); default: a pool of this VM's own. */
  readonly pool?: MachineMemory;
  /** Most machine frames the VM may hold (its pmap's limit); default: no limit beyond the pool. */
  readonly limitFrames?: number;
  /** The vCPU scheduler's say on when the harts run, when they share the machine's thread; default: always. */
  readonly gate?: RunGate;
  /** Per hart, its gate when harts run on threads of their own (see `threaded`); default: none. */
  readonly vcpuGates?: readonly RunGateSpec[];
}

export type VirtOutcome =
  | { readonly kind: 'poweroff' }
  | { readonly kind: 'reset' }
  | { readonly kind: 'fail'; readonly code: number }
  | { readonly kind: 'error'; readonly reason: string };

/**
 * Instructions a hart runs per run() call. Each call ends on an exact count, which
 * translated code reaches by interpreting the last few instructions: with one
 * hart the calls are long (20,000 cost gzip ~15 %); harts sharing the thread
 * take turns more often (a hart spinning on a lock another holds wastes its turn).
 */
const SLICE = 100_000;
const SLICE_SHARED = 20_000;
/** Host milliseconds between yields to the event loop while harts run. */
const YIELD_MS = 20;
/** Longest a console byte waits in the output batch of a machine with threaded harts (ms). */
const OUTPUT_BATCH_MS = 5;

/** fw_dynamic_info (OpenSBI docs/firmware/fw_dynamic.md). */
const FW_DYNAMIC_MAGIC = 0x4942534f;
const FW_DYNAMIC_VERSION = 2;

export class VirtMachine {
  readonly desc: MachineDescription;
  readonly mem: MachineMemory;
  readonly pmap: Pmap;
  readonly clock: Clock;
  readonly harts: Hart[] = [];
  /** The harts' translators (none with --jit off). */
  readonly jits: Jit[] = [];
  private readonly jitMode: JitMode;
  readonly bus = new MmioBus();
  /** Steal time per hart, published to guests that register through SBI STA. */
  readonly stealTime: StealTime;
  /** Exits the harts took, by kind (metrics). */
  readonly exitCounts = new Map<string, number>();
  readonly uart: Uart16550;
  readonly plic: Plic;
  private readonly rtc: GoldfishRtc;
  private powerButton: VirtioPowerButton | null = null;
  private console: VirtioConsole | null = null;
  private balloonDevice: VirtioBalloon | null = null;
  /** The devices in virtio slots, for closing their back ends. */
  private readonly virtio: VirtioDevice[] = [];
  private readonly log: (line: string) => void;
  /** The command line names hvc0 as the (last, hence primary) console. */
  private readonly hvcConsole: boolean;
  /** Devices' host set-up still under way; run() waits for it. */
  private readonly starting: Promise<unknown>[] = [];
  private readonly hsm: number[];
  private readonly idle: boolean[];
  private outcome: VirtOutcome | null = null;
  private kickWaiter: (() => void) | null = null;
  /**
   * An SMP machine on a host clock runs each hart on a thread of its own, and
   * this thread keeps the devices (null: the harts take turns on this thread).
   * A clock driven by instructions keeps them on one thread: its time, and so
   * the run, is then deterministic.
   */
  readonly threads: VcpuThreads | null;
  private outBuf: number[] = [];

  constructor(readonly cfg: VirtConfig) {
    if (!Number.isInteger(cfg.cpus) || cfg.cpus < 1 || cfg.cpus > MAX_CPUS) throw new MachineError(`cpus must be 1 to ${MAX_CPUS}`);
    this.log = cfg.log ?? ((line) => { process.stderr.write(`disco: ${line}\n`); });
    this.hvcConsole = [...cfg.append.matchAll(/(?:^|\s)console=([^\s,]+)/g)].at(-1)?.[1] === 'hvc0';
    this.desc = describeVirt(cfg.memoryBytes, cfg.cpus, cfg.virtio);
    this.mem = cfg.pool ?? MachineMemory.create(cfg.memoryBytes + 32 * 1024 * 1024);
    this.pmap = Pmap.create(this.mem, [
      { name: 'rom', kind: 'rom', base: VIRT_MAP.ROM, size: VIRT_MAP.ROM_SIZE },
      { name: 'dram', kind: 'ram', base: VIRT_MAP.DRAM, size: cfg.memoryBytes },
    ], cfg.limitFrames);
    this.stealTime = new StealTime(this.pmap, cfg.cpus);
    this.clock = Clock.create(cfg.clock);
    const sbi = cfg.boot.kind === 'sbi';
    warmInterpreter();
    for (let h = 0; h < cfg.cpus; h++) {
      this.harts.push(new Hart({
        mem: this.mem, pmap: this.pmap, clock: this.clock, hartId: h,
        ecallExitMask: sbi ? 1 << PRIV_S : 0, machineTrapExit: sbi,
      }));
    }
    const jitMode = cfg.jit ?? defaultJitMode();
    this.jitMode = jitMode;
    // A machine with one gate for all its harts (a scheduler that sees the VM as one
    // entity) keeps them on this thread, where that gate can hold them.
    const threaded = cfg.cpus > 1 && cfg.clock === 'host' && (cfg.gate === undefined || cfg.vcpuGates !== undefined);
    this.threads = threaded ? new VcpuThreads({
      mem: this.mem, pmap: this.pmap, clock: this.clock, harts: this.harts, sbi, jit: jitMode, slice: SLICE,
      gates: this.harts.map((_, i) => cfg.vcpuGates?.[i] ?? null),
    }) : null;
    // Threaded harts get their translators on their own threads.
    for (const h of this.threads ? [] : this.harts) {
      const j = accelerate(h, jitMode);
      if (j) this.jits.push(j);
    }
    this.hsm = this.harts.map(() => HSM_STOPPED);
    this.idle = this.harts.map(() => false);
    const ports = this.harts.map((h) => h.port);
    let uart: Uart16550 | undefined, plic: Plic | undefined, rtc: GoldfishRtc | undefined;
    // Devices come from the same description as the device tree.
    for (const d of this.desc.devices) {
      switch (d.kind) {
        case 'clint': this.bus.add(new Clint(d.base, ports, this.clock)); break;
        case 'plic': plic = new Plic(d.base, ports); this.plic = plic; this.bus.add(plic); break;
        case 'uart': {
          const irq = d.irq;
          uart = new Uart16550(d.base, (b) => this.emit(b), (level) => this.plic.setIrq(irq, level));
          this.bus.add(uart);
          break;
        }
        case 'rtc': {
          const irq = d.irq;
          rtc = new GoldfishRtc(d.base, (level) => this.plic.setIrq(irq, level));
          this.bus.add(rtc);
          break;
        }
        case 'test': this.bus.add(new SifiveTest(d.base, (e) => this.power(e))); break;
        case 'virtio-mmio': {
          const irq = d.irq;
          if (d.device === null) {
            this.bus.add(new VirtioMmioEmpty(d.base));
            break;
          }
          const spec = d.device;
          const device = createVirtioDevice(spec, {
            vmName: cfg.name, pmap: this.pmap, consoleOutput: (b) => this.emitConsole(b), log: this.log,
            starting: (p) => { p.catch(() => undefined); this.starting.push(p); },
          });
          this.virtio.push(device);
          if (device instanceof VirtioPowerButton) this.powerButton = device;
          if (device instanceof VirtioConsole) this.console ??= device;
          if (device instanceof VirtioBalloon) this.balloonDevice ??= device;
          this.bus.add(new VirtioMmioTransport({
            base: d.base, device, mem: pmapGuestMemory(this.pmap),
            // Devices finish host I/O asynchronously: a raised line must wake harts waiting in WFI.
            irq: (level) => { this.plic.setIrq(irq, level); if (level) this.kick(); },
            onError: (reason) => this.log(`virtio ${spec.kind} at 0x${hex(d.base)}: ${reason}`),
          }));
          break;
        }
        default: {
          const never: never = d;
          throw new MachineError(`unknown device ${JSON.stringify(never)}`);
        }
      }
    }
    if (!uart || !plic || !rtc) throw new MachineError('the virt description lacks a UART, PLIC or RTC');
    this.uart = uart;
    this.plic = plic;
    this.rtc = rtc;
    this.load();
  }

  /** Places firmware, kernel, initrd and device tree in guest memory and sets the harts' reset state. */
  private load(): void {
    const { cfg } = this;
    const dram: number = VIRT_MAP.DRAM;
    const ramEnd = dram + cfg.memoryBytes;
    let kernelEnd = dram + KERNEL_OFFSET;
    let kernelEntry = dram + KERNEL_OFFSET;
    if (cfg.kernel) {
      if (cfg.boot.kind === 'none') {
        const elf = parseElf(cfg.kernel);
        for (const s of elf.segments) {
          if (s.memsz === 0) continue;
          if (s.paddr < dram || s.paddr + s.memsz > ramEnd) throw new MachineError(`kernel segment at 0x${hex(s.paddr)} is outside RAM`);
          this.pmap.write(s.paddr, s.data);
          kernelEnd = Math.max(kernelEnd, s.paddr + s.memsz);
        }
        kernelEntry = elf.entry;
      } else {
        const img = parseLinuxImage(cfg.kernel);
        const at = dram + img.textOffset;
        if (at + img.imageSize > ramEnd) throw new MachineError(`kernel (${img.imageSize} bytes) does not fit in ${cfg.memoryBytes >> 20} MiB of RAM`);
        this.pmap.write(at, cfg.kernel);
        kernelEntry = at;
        kernelEnd = at + img.imageSize;
      }
    } else if (cfg.boot.kind !== 'firmware') {
      throw new MachineError('no kernel to boot');
    }
    // The device tree at the top of RAM (below 3 GiB), 2 MiB aligned, as QEMU places it.
    const fdtProbe = virtDeviceTree(this.desc, { bootargs: cfg.append, initrd: cfg.initrd ? { start: 0, end: 0 } : null });
    const fdtTop = Math.min(ramEnd, 0xc0000000);
    const fdtAddr = Math.floor((fdtTop - fdtProbe.length) / 0x200000) * 0x200000;
    let initrd: { start: number; end: number } | null = null;
    if (cfg.initrd) {
      // Half-way into RAM (at most 512 MiB in), past the kernel, below the device tree.
      let start = dram + Math.min(cfg.memoryBytes / 2, 512 * 1024 * 1024);
      start = Math.max(start, Math.ceil(kernelEnd / PAGE_SIZE) * PAGE_SIZE);
      if (start + cfg.initrd.length > fdtAddr) {
        throw new MachineError(`initrd (${cfg.initrd.length} bytes) does not fit in guest memory (${cfg.memoryBytes >> 20} MiB) beside the kernel`);
      }
      this.pmap.write(start, cfg.initrd);
      initrd = { start, end: start + cfg.initrd.length };
    }
    const fdt = virtDeviceTree(this.desc, { bootargs: cfg.append, initrd });
    if (fdtAddr < kernelEnd) throw new MachineError('guest memory is too small for the kernel and its device tree');
    this.pmap.write(fdtAddr, fdt);

    for (const h of this.harts) {
      h.reset(BigInt(VIRT_MAP.ROM));
      h.setX(10, BigInt(h.hartId));
      h.setX(11, BigInt(fdtAddr));
    }
    switch (cfg.boot.kind) {
      case 'sbi':
        for (const h of this.harts) prepareSupervisor(h);
        enterSupervisor(this.harts[0]!, BigInt(kernelEntry), BigInt(fdtAddr));
        this.setHsm(0, HSM_STARTED);
        break;
      case 'firmware': {
        const fw = cfg.boot.image;
        let fwEntry: number = dram;
        if (isElf(fw)) {
          const elf = parseElf(fw);
          // Position-independent firmware (OpenSBI is built so) goes at the start of DRAM.
          const base = elf.positionIndependent ? dram : 0;
          for (const s of elf.segments) {
            if (s.memsz === 0) continue;
            const at = base + s.paddr;
            if (at < dram || at + s.memsz > dram + KERNEL_OFFSET) throw new MachineError(`firmware segment at 0x${hex(at)} is outside 0x${hex(dram)}-0x${hex(dram + KERNEL_OFFSET)}`);
            this.pmap.write(at, s.data);
          }
          fwEntry = base + elf.entry;
        } else {
          if (fw.length > KERNEL_OFFSET) throw new MachineError('firmware image is larger than 2 MiB');
          this.pmap.write(dram, fw);
        }
        this.writeResetVector(fwEntry, fdtAddr, cfg.kernel ? kernelEntry : 0);
        for (let i = 0; i < this.harts.length; i++) this.setHsm(i, HSM_STARTED);
        break;
      }
      case 'none':
        for (let i = 0; i < this.harts.length; i++) {
          this.harts[i]!.pc = BigInt(kernelEntry);
          this.setHsm(i, HSM_STARTED);
        }
        break;
      default: {
        const never: never = cfg.boot;
        throw new MachineError(`unknown boot source ${JSON.stringify(never)}`);
      }
    }
  }

  private setHsm(i: number, state: number): void {
    this.hsm[i] = state;
    this.threads?.channel.setHsm(i, state);
  }

  /** Guest instructions run so far, all harts. */
  instructions(): number {
    const t = this.threads;
    return this.harts.reduce((n, h, i) => n + (t ? t.channel.steps(i) : h.steps), 0);
  }

  /** The translators' counters, all harts together; null with the translator off. */
  jitStats(): JitStats | null {
    if (this.jitMode === 'off') return null;
    const t = this.threads;
    return sumJitStats(t ? this.harts.map((_, i) => t.channel.jitStats(i)) : this.jits.map((j) => j.stats));
  }

  /** Exits the harts took, by kind. */
  exits(): Map<string, number> {
    return this.threads ? this.threads.channel.exits() : new Map(this.exitCounts);
  }

  /** Steal time per hart (ns). */
  stealNs(): number[] {
    const t = this.threads;
    return this.harts.map((h, i) => (t ? t.channel.stealNs(i) : this.stealTime.total(h.hartId)));
  }

  /** The boot ROM: every hart jumps to the firmware with a0 = hartid, a1 = fdt, a2 = fw_dynamic_info. */
  private writeResetVector(fwEntry: number, fdtAddr: number, nextAddr: number): void {
    const code = [
      0x00000297, // auipc t0, 0
      0x02828613, // addi  a2, t0, 40     (fw_dynamic_info)
      0xf1402573, // csrr  a0, mhartid
      0x0202b583, // ld    a1, 32(t0)     (fdt address)
      0x0182b283, // ld    t0, 24(t0)     (firmware entry)
      0x00028067, // jr    t0
    ];
    const rom = new DataView(new ArrayBuffer(80));
    code.forEach((w, i) => rom.setUint32(i * 4, w, true));
    rom.setBigUint64(24, BigInt(fwEntry), true);
    rom.setBigUint64(32, BigInt(fdtAddr), true);
    // fw_dynamic_info at offset 40: magic, version, next_addr, next_mode (1 = S), options, boot_hart
    rom.setBigUint64(40, BigInt(FW_DYNAMIC_MAGIC), true);
    rom.setBigUint64(48, BigInt(FW_DYNAMIC_VERSION), true);
    rom.setBigUint64(56, BigInt(nextAddr), true);
    rom.setBigUint64(64, 1n, true);
    rom.setBigUint64(72, 0n, true);
    const info = new DataView(new ArrayBuffer(8));
    info.setBigUint64(0, -1n & ((1n << 64n) - 1n), true); // boot_hart: any (lottery)
    this.pmap.write(VIRT_MAP.ROM, new Uint8Array(rom.buffer));
    this.pmap.write(VIRT_MAP.ROM + 80, new Uint8Array(info.buffer));
  }

  private emit(b: number): void {
    this.outBuf.push(b);
    if (this.outBuf.length >= 4096) this.flushOutput();
  }

  /** virtio-console port 0 shares the VM's terminal with the UART, in order. */
  private emitConsole(bytes: Uint8Array): void {
    this.flushOutput();
    this.cfg.output(bytes);
  }

  flushOutput(): void {
    if (this.outBuf.length === 0) return;
    const bytes = Uint8Array.from(this.outBuf);
    this.outBuf = [];
    this.cfg.output(bytes);
  }

  private power(e: PowerEvent): void {
    if (this.outcome) return;
    switch (e.kind) {
      case 'poweroff': this.outcome = { kind: 'poweroff' }; break;
      case 'reset': this.outcome = { kind: 'reset' }; break;
      case 'fail': this.outcome = { kind: 'fail', code: e.code }; break;
      default: {
        const never: never = e;
        this.outcome = { kind: 'error', reason: `unknown power event ${JSON.stringify(never)}` };
      }
    }
  }

  /**
   * Host console input for the guest: to hvc0 (virtio-console port 0) when the
   * kernel's console is hvc0 (the last `console=` of the command line, as
   * Linux picks /dev/console) and the guest has the port open; to the UART
   * otherwise (firmware, early boot, a console on ttyS0). Both outputs reach
   * the terminal, so only the input needs a choice.
   */
  input(bytes: Uint8Array): void {
    if (this.hvcConsole && this.console?.consoleOpen()) this.console.input(bytes);
    else this.uart.receive(bytes);
    this.kick();
  }

  /** The virtio balloon, if the VM has one (its target, actual size and statistics). */
  balloon(): VirtioBalloon | null {
    return this.balloonDevice;
  }

  /**
   * Graceful shutdown request: presses the virtio-input power button (KEY_POWER),
   * which a guest userland turns into its shutdown. Returns whether the press was queued.
   */
  requestShutdown(): boolean {
    // A guest with no driver for the button (firmware, an early kernel) cannot take the request.
    if (!this.powerButton || !this.powerButton.driverReady()) return false;
    const queued = this.powerButton.press();
    this.kick();
    return queued;
  }

  /** Ends the run from the host (hard power-off). */
  stop(outcome: VirtOutcome): void {
    if (!this.outcome) this.outcome = outcome;
    this.kick();
  }

  /** Releases the devices' host resources (files, sockets); the machine cannot run afterwards. */
  async close(): Promise<void> {
    this.stop({ kind: 'poweroff' });
    // The translators give their lookup tables back to the pool.
    for (const j of this.jits) j.close();
    this.jits.length = 0;
    const results = await Promise.allSettled(this.virtio.map(async (d) => d.close?.()));
    for (const r of results) if (r.status === 'rejected') this.log(`closing a device: ${String((r.reason as Error)?.message ?? r.reason)}`);
  }

  /** Wakes the scheduler if it waits for an event. */
  kick(): void {
    this.threads?.channel.ring();
    const w = this.kickWaiter;
    this.kickWaiter = null;
    w?.();
  }

  private readonly platform: SbiPlatform = {
    hartCount: 0,
    hartState: (id) => this.hsm[id] ?? HSM_STOPPED,
    hartStart: (id, addr, opaque) => {
      const h = this.harts[id]!;
      enterSupervisor(h, addr, opaque);
      this.hsm[id] = HSM_STARTED;
      this.idle[id] = false;
    },
    hartStop: (id) => { this.hsm[id] = HSM_STOPPED; },
    sendIpi: (id) => { this.harts[id]!.port.setIrqLine(MIP_SSIP, true); this.idle[id] = false; },
    remoteFence: (id, kind) => { if (kind === 'i') this.harts[id]!.fenceI(); else this.harts[id]!.flushTlb(); },
    systemReset: (type) => { this.power(type === SRST_SHUTDOWN ? { kind: 'poweroff' } : { kind: 'reset' }); },
    consoleWrite: (bytes) => { for (const b of bytes) this.emit(b); },
    consoleRead: () => new Uint8Array(0),
    stealTimeSetShmem: (id, lo, hi, flags) => this.stealTime.setShmem(id, lo, hi, flags),
    readGuest: (gpa, length) => {
      try { return this.pmap.read(gpa, length); } catch { return null; }
    },
    writeGuest: (gpa, data) => {
      try { this.pmap.write(gpa, data); return true; } catch { return false; }
    },
  };

  /** Runs the guest until it powers off, resets, fails, or the host stops it. */
  async run(): Promise<VirtOutcome> {
    try {
      await Promise.all(this.starting);
    } catch (e) {
      return { kind: 'error', reason: e instanceof Error ? e.message : String(e) };
    }
    (this.platform as { hartCount: number }).hartCount = this.harts.length;
    if (this.threads) return this.runThreaded(this.threads);
    let lastYield = performance.now();
    while (!this.outcome) {
      let ran = false;
      for (let i = 0; i < this.harts.length && !this.outcome; i++) {
        if (this.hsm[i] !== HSM_STARTED) continue;
        const h = this.harts[i]!;
        if (this.idle[i]) {
          if (!h.interruptPendingForWfi()) continue;
          this.idle[i] = false;
        }
        const wait = this.cfg.gate?.enter();
        if (wait) {
          await wait;
          if (this.outcome) break;
        }
        ran = true;
        this.step(i, h);
      }
      this.rtc.poll();
      const now = performance.now();
      if (this.outcome) break;
      if (!ran) {
        this.cfg.gate?.idle();
        this.flushOutput();
        // A real wait lets the event loop run; a clock jump ('instructions' mode) does not.
        if (await this.sleep()) lastYield = performance.now();
      }
      if (now - lastYield > YIELD_MS) {
        this.flushOutput();
        await new Promise<void>((r) => setImmediate(r));
        lastYield = performance.now();
      }
    }
    this.flushOutput();
    return this.outcome;
  }

  /** The device thread of a machine whose harts run on threads of their own. */
  private async runThreaded(threads: VcpuThreads): Promise<VirtOutcome> {
    threads.start({
      console: (bytes) => this.emitConsole(bytes),
      power: (event) => this.power({ kind: event }),
      fail: (reason) => { if (!this.outcome) this.outcome = { kind: 'error', reason }; },
    });
    const ch = threads.channel;
    let flushed = performance.now();
    try {
      while (!this.outcome) {
        const bell = ch.bell();
        threads.serve(this.bus);
        this.rtc.poll();
        if (this.outcome) break;
        // Console bytes go out in batches, as with harts on this thread, not one write per MMIO exit.
        const now = performance.now();
        if (now - flushed >= OUTPUT_BATCH_MS) {
          this.flushOutput();
          flushed = now;
        }
        // Harts ring for MMIO; devices and the host ring through kick().
        await ch.waitBell(bell, this.outBuf.length > 0 ? OUTPUT_BATCH_MS : YIELD_MS);
      }
    } finally {
      await threads.stop();
    }
    this.flushOutput();
    return this.outcome;
  }

  private step(i: number, h: Hart): void {
    this.pmap.enterRun(i);
    const exit = h.run(this.harts.length === 1 ? SLICE : SLICE_SHARED);
    this.pmap.leaveRun(i);
    this.exitCounts.set(exit.kind, (this.exitCounts.get(exit.kind) ?? 0) + 1);
    switch (exit.kind) {
      case 'budget': return;
      case 'wfi': this.idle[i] = true; return;
      case 'mmio':
        if (exit.write) {
          if (!this.bus.write(exit.gpa, exit.size, exit.value)) h.accessFault();
        } else {
          const v = this.bus.read(exit.gpa, exit.size);
          if (v === null) h.accessFault();
          else h.completeLoad(v);
        }
        return;
      case 'ecall':
        serveSbi(h, this.platform);
        return;
      case 'trap':
        this.outcome = { kind: 'error', reason: `hart ${i}: exception ${exit.cause} (tval 0x${exit.tval.toString(16)}) at pc 0x${exit.epc.toString(16)} with no firmware to take it` };
        return;
      case 'readonly':
        this.outcome = { kind: 'error', reason: `hart ${i}: write to read-only guest page 0x${hex(exit.gpa)}` };
        return;
      case 'nomem':
        this.outcome = { kind: 'error', reason: `hart ${i}: out of memory backing guest page 0x${hex(exit.gpa)}` };
        return;
      case 'htif':
        return;
      case 'halt':
        this.outcome = { kind: 'error', reason: `hart ${i}: ${exit.reason}` };
        return;
      default: {
        const never: never = exit;
        this.outcome = { kind: 'error', reason: `unknown exit ${JSON.stringify(never)}` };
      }
    }
  }

  /**
   * All harts wait for interrupts: sleep until the next timer deadline or a host event.
   * Returns whether it waited on the event loop (false when an instruction-driven clock jumped).
   */
  private async sleep(): Promise<boolean> {
    let deadline = Infinity;
    for (let i = 0; i < this.harts.length; i++) {
      if (this.hsm[i] === HSM_STARTED) deadline = Math.min(deadline, this.harts[i]!.nextTimerDeadline());
    }
    let ms = this.clock.msUntil(deadline);
    if (this.clock.shared.mode === 'instructions' && deadline !== Infinity) {
      // Nothing runs until the deadline: let time jump there.
      this.clock.set(deadline);
      ms = 0;
    }
    ms = Math.min(ms, 100);
    if (ms <= 0) return false;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => { this.kickWaiter = null; resolve(); }, ms);
      this.kickWaiter = () => { clearTimeout(t); resolve(); };
    });
    return true;
  }
}

export interface LinuxImageHeader {
  readonly textOffset: number;
  readonly imageSize: number;
}

/** The RISC-V Linux `Image` header (Documentation/arch/riscv/boot-image-header.rst). */
export function parseLinuxImage(img: Uint8Array): LinuxImageHeader {
  if (img.length < 64) throw new MachineError('kernel image is too short');
  const dv = new DataView(img.buffer, img.byteOffset, img.byteLength);
  const magic2 = dv.getUint32(56, true);
  const magic = new TextDecoder().decode(img.subarray(48, 53));
  if (magic !== 'RISCV' && magic2 !== 0x05435352) {
    if (isElf(img)) throw new MachineError('kernel is an ELF file: use --bios none for bare-metal ELF kernels, or give a Linux Image');
    throw new MachineError('kernel is not a RISC-V Linux Image (no RISCV magic in its header)');
  }
  checkPeSections(img, dv);
  const textOffset = Number(dv.getBigUint64(8, true));
  const imageSize = Number(dv.getBigUint64(16, true));
  if (textOffset % PAGE_SIZE !== 0 || textOffset >= 0x40000000) throw new MachineError(`kernel text offset 0x${hex(textOffset)} is invalid`);
  return { textOffset, imageSize: Math.max(imageSize, img.length) };
}

/**
 * Images with an EFI stub are PE/COFF files too ("MZ" at 0, PE header at e_lfanew):
 * every section's raw data must lie inside the file, which catches truncated kernels.
 */
function checkPeSections(img: Uint8Array, dv: DataView): void {
  if (img[0] !== 0x4d || img[1] !== 0x5a) return;
  const truncated = (): never => { throw new MachineError('kernel image is truncated (its PE sections extend past the end of the file)'); };
  const pe = dv.getUint32(0x3c, true);
  if (pe + 24 > img.length) truncated();
  if (dv.getUint32(pe, true) !== 0x00004550) return; // not "PE\0\0": nothing more to check
  const sections = dv.getUint16(pe + 6, true);
  const optSize = dv.getUint16(pe + 20, true);
  const table = pe + 24 + optSize;
  if (table + sections * 40 > img.length) truncated();
  for (let i = 0; i < sections; i++) {
    const sh = table + i * 40;
    const rawSize = dv.getUint32(sh + 16, true);
    const rawPtr = dv.getUint32(sh + 20, true);
    if (rawPtr + rawSize > img.length) truncated();
  }
}


