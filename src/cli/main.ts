#!/usr/bin/env -S node --v8-pool-size=1
/**
 * The `disco` command line. Errors are one line on stderr and a non-zero exit;
 * DISCO_DEBUG=1 adds the stack for developers.
 *
 * One V8 platform thread: V8's optimising compiler recompiles hot translated
 * regions on the platform's threads (four by default), and on a 2-core host
 * they took the vCPU thread's core from it for about a second of every boot
 * (docs/decisions.md). Tests and benchmarks start Disco with the flags of
 * this line (test/support.ts, discoNode).
 */
import { isJitMode, type JitMode } from '../jit/index.js';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { ClockMode } from '../cpu/clock.js';
import {
  BASE_MODULES, buildRootfs, DEFAULT_ROOTFS_MIB, ImageError, fetchImages, defaultInitramfs, INITRAMFS_CMDLINE, MAX_ROOTFS_MIB, MIN_ROOTFS_MIB,
} from '../image/index.js';
import { runBareMetal, type BareMetalConfig } from '../machine/baremetal.js';
import { ElfError, isElf, parseElf } from '../machine/elf.js';
import { MachineError, MAX_CPUS, VirtMachine, type BootSource, type VirtConfig, type VirtOutcome } from '../machine/virt.js';
import { HostConsole, type ConsoleTarget } from './console.js';
import { cmdExec } from './exec.js';
import { parseDevice, parseDrive, parseNet, UsageError } from './device-options.js';
import { runDir, VM_NAME_PATTERN } from '../host/paths.js';
import type { VirtioDeviceSpec } from '../machine/virtio-spec.js';
import { ApiServerError, startApiServer } from '../api/server.js';
import { RunHost } from './run-api.js';
import { cmdVm, ClientError } from './vm.js';
import { cmdServe } from './serve.js';
import { join } from 'node:path';


const USAGE = `usage: disco <command> [options]

commands:
  run                     boot a guest on the virt board (default: Debian's kernel and a busybox shell)
  exec NAME -- CMD [ARG...]  run a command in a running VM through its guest agent (vsock); --timeout, --socket
  image fetch             download and cache the default guest (Debian riscv64 kernel, busybox, OpenSBI)
  image build [--output FILE] [--size MiB] [--packages a,b,c]
                          an ext4 root disk from Debian riscv64 packages (default socat,iperf3,fio; 512 MiB),
                          cached; prints its path. Boot it with --drive file=FILE[,overlay=PATH]
                          --append 'console=ttyS0 root=/dev/vda' (disco.ip=dhcp or disco.ip=A.B.C.D/NN: network)
  serve                   the hypervisor: many VMs on one host, driven through its API (disco serve --help)
  vm create|start|pause|resume|shutdown|kill|rm|ls|console|exec|stats|set|balloon|events|host
                          drive VMs through the API of a host or a disco run VM (disco vm --help)

options of run (shaped like QEMU's):
  --kernel FILE           a RISC-V Linux Image (or, with --bios none, a bare-metal ELF)
  --initrd FILE           an initramfs
  --append STRING         the kernel command line (default: console=ttyS0)
  --bios FILE|none        M-mode firmware (e.g. OpenSBI fw_jump.elf) then the kernel (the default one
                          unless --kernel is given); 'none': the kernel
                          is entered in M-mode. A --bios ELF that defines 'tohost' with no --kernel is run
                          bare-metal: a store of 1 to tohost prints PASS, other odd values FAIL test N.
                          Default: Disco is the firmware (SBI 2.0 served by the hypervisor).
  --memory MiB            guest RAM (default 512; 128 for a bare-metal --bios ELF)
  --cpus N                harts, 1 to ${MAX_CPUS} (default 1)
  --no-reboot             a guest reboot ends the run instead of restarting the guest
  --clock host|instructions  what mtime follows (default host; instructions makes runs reproducible)
  --jit off|on|eager      binary translation of hot guest code to WebAssembly (default on, or $DISCO_JIT);
                          eager translates code the first time it runs (for testing)
  --max-instructions N    bare-metal runs: stop a runaway guest after N instructions per hart (exit 2)
  --name NAME             the VM's name (stable MAC addresses, socket paths; default disco-PID)
  --drive file=PATH[,readonly=on][,overlay=PATH][,serial=S]
                          a virtio disk (raw image); overlay: a copy-on-write layer above a read-only base
  --net user[,hostfwd=tcp::HOSTPORT-:GUESTPORT]...  |  --net switch=NAME  |  --net tap=IFNAME   [,mac=MAC]
                          a virtio network interface: user-mode NAT with DHCP/DNS, an in-host switch
                          shared by the VMs that name it, or a host TAP device
  --device rng | console[,port=NAME[:SOCKET]]... | balloon[,deflate-on-oom=on|off][,free-page-reporting=on|off]
           | vsock[,cid=N][,socket=PATH]
                          other virtio devices. Slots fill from 0: drives, then networks, then devices.
  -h, --help              this text

console: C-a x quits, C-a s asks the guest to shut down, C-a h lists keys.
`;

function intOption(v: string | undefined, name: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^[0-9]+$/.test(v)) throw new UsageError(`--${name} needs a whole number, got '${v}'`);
  const n = Number(v);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

function readInput(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new UsageError(`cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}


async function cmdRun(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      bios: { type: 'string' },
      kernel: { type: 'string' },
      initrd: { type: 'string' },
      append: { type: 'string' },
      cpus: { type: 'string' },
      memory: { type: 'string' },
      'max-instructions': { type: 'string' },
      clock: { type: 'string' },
      jit: { type: 'string' },
      'no-reboot': { type: 'boolean' },
      name: { type: 'string' },
      drive: { type: 'string', multiple: true },
      net: { type: 'string', multiple: true },
      device: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  const clock = values.clock ?? 'host';
  if (clock !== 'host' && clock !== 'instructions') throw new UsageError(`--clock must be host or instructions, got '${clock}'`);
  const cpus = intOption(values.cpus, 'cpus', 1, MAX_CPUS, 1);
  const jitArg = values.jit ?? process.env['DISCO_JIT'] ?? 'on';
  if (!isJitMode(jitArg)) throw new UsageError(`--jit must be off, on or eager, got '${jitArg}'`);
  const jit: JitMode = jitArg;
  const bios = values.bios !== undefined && values.bios !== 'none' ? readInput(values.bios, 'firmware') : null;
  // A malformed firmware ELF is refused before anything else happens.
  const biosElf = bios && isElf(bios) ? parseElf(bios) : null;
  if (bios && biosElf && values.kernel === undefined && biosElf.symbols.has('tohost')) {
    const memMiB = intOption(values.memory, 'memory', 128, 2048, 128);
    const maxInstructions = intOption(values['max-instructions'], 'max-instructions', 1, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    return runHtif(bios, { ramBytes: memMiB * 1024 * 1024, cpus, clock: clock as ClockMode, maxInstructions, jit });
  }
  if (bios && !isElf(bios)) throw new UsageError(`${values.bios}: not an ELF file`);
  if (values['max-instructions'] !== undefined) throw new UsageError('--max-instructions applies to bare-metal --bios ELF runs only');
  const memMiB = intOption(values.memory, 'memory', 64, 3072, 512);
  const name = values.name ?? `disco-${process.pid}`;
  if (!VM_NAME_PATTERN.test(name)) throw new UsageError(`--name '${name}' must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  const virtio: VirtioDeviceSpec[] = [
    ...(values.drive ?? []).map(parseDrive),
    ...(values.net ?? []).map((n, i) => parseNet(n, name, i)),
    ...(values.device ?? []).map((d) => parseDevice(d, name, runDir)),
  ];
  let kernel: Uint8Array;
  let initrd: Uint8Array | null = values.initrd !== undefined ? readInput(values.initrd, 'initrd') : null;
  let append = values.append ?? 'console=ttyS0';
  if (values.kernel !== undefined) {
    kernel = readInput(values.kernel, 'kernel');
  } else {
    if (values.bios === 'none') throw new UsageError('--bios none needs --kernel FILE.elf');
    const images = await fetchImages({ log: (l) => process.stderr.write(`disco: ${l}\n`) });
    kernel = readFileSync(images.kernel);
    if (!initrd) {
      initrd = await defaultInitramfs(images, { modules: BASE_MODULES });
      if (values.append === undefined) append = INITRAMFS_CMDLINE;
    }
  }
  const boot: BootSource = values.bios === 'none' ? { kind: 'none' } : bios ? { kind: 'firmware', image: bios } : { kind: 'sbi' };
  const cfg: VirtConfig = {
    memoryBytes: memMiB * 1024 * 1024, cpus, clock: clock as ClockMode, boot, kernel, initrd, append,
    output: (b) => { process.stdout.write(b); },
    name, virtio, jit,
  };
  return runVirt(cfg, values['no-reboot'] === true);
}

async function runHtif(image: Uint8Array, cfg: BareMetalConfig): Promise<number> {
  const outcome = await runBareMetal(image, cfg);
  switch (outcome.kind) {
    case 'htif': {
      const v = BigInt(outcome.value);
      if (v === 1n) {
        process.stdout.write('PASS\n');
        return 0;
      }
      if (v & 1n) {
        process.stdout.write(`FAIL test ${(v >> 1n).toString()}\n`);
        return 1;
      }
      process.stderr.write(`disco: unknown HTIF command 0x${v.toString(16)}\n`);
      return 1;
    }
    case 'limit':
      process.stderr.write(`disco: stopped after ${outcome.instructions} instructions (--max-instructions)\n`);
      return 2;
    case 'halt':
      process.stderr.write(`disco: guest halted: ${outcome.reason}\n`);
      return 1;
    default: {
      const never: never = outcome;
      return never;
    }
  }
}

/** Boots the virt machine; a guest reboot starts a fresh machine unless noReboot. */
async function runVirt(cfg: VirtConfig, noReboot: boolean): Promise<number> {
  let machine: VirtMachine | null = null;
  let shutdownRequests = 0;
  const target: ConsoleTarget = {
    input: (b) => machine?.input(b),
    powerOff: () => machine?.stop({ kind: 'poweroff' }),
    shutdown: () => {
      if (!machine) return;
      shutdownRequests++;
      if (shutdownRequests > 1 || !machine.requestShutdown()) {
        process.stderr.write('\r\ndisco: powering off\r\n');
        machine.stop({ kind: 'poweroff' });
      }
    },
  };
  const host = new RunHost(cfg.name, (a) => {
    switch (a) {
      case 'Shutdown': target.shutdown(); return;
      case 'Kill': target.powerOff(); return;
      default: {
        const never: never = a;
        return never;
      }
    }
  });
  const api = await startApiServer(join(runDir(), `${cfg.name}.sock`), host);
  const term = new HostConsole(target);
  const onSigterm = (): void => target.shutdown();
  process.on('SIGTERM', onSigterm);
  term.attach();
  try {
    for (;;) {
      machine = new VirtMachine(cfg);
      host.machine = machine;
      shutdownRequests = 0;
      let outcome: VirtOutcome;
      try {
        outcome = await machine.run();
      } finally {
        host.machine = null;
        await machine.close();
      }
      switch (outcome.kind) {
        case 'poweroff': return 0;
        case 'fail': return outcome.code === 0 ? 1 : outcome.code;
        case 'reset':
          if (noReboot) return 0;
          continue;
        case 'error':
          process.stderr.write(`\ndisco: ${outcome.reason}\n`);
          return 1;
        default: {
          const never: never = outcome;
          return never;
        }
      }
    }
  } finally {
    term.detach();
    process.off('SIGTERM', onSigterm);
    await new Promise<void>((r) => api.close(() => r()));
  }
}

async function cmdImage(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const log = (l: string): void => { process.stderr.write(`disco: ${l}\n`); };
  switch (sub) {
    case 'fetch': {
      const { positionals } = parseArgs({ args: rest, options: {}, allowPositionals: true, strict: true });
      if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
      const images = await fetchImages({ log });
      process.stdout.write(`kernel   ${images.kernel}\nbusybox  ${images.busybox}\nmodules  ${images.modulesDir}\n`);
      return 0;
    }
    case 'build': {
      const { values, positionals } = parseArgs({
        args: rest,
        options: { output: { type: 'string', short: 'o' }, size: { type: 'string' }, packages: { type: 'string' } },
        allowPositionals: true, strict: true,
      });
      if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
      const sizeMiB = intOption(values.size, 'size', MIN_ROOTFS_MIB, MAX_ROOTFS_MIB, DEFAULT_ROOTFS_MIB);
      const packages = values.packages === undefined ? undefined : values.packages.split(',').map((p) => p.trim()).filter((p) => p !== '');
      const r = await buildRootfs({ sizeMiB, log, ...(values.output !== undefined ? { output: values.output } : {}), ...(packages ? { packages } : {}) });
      process.stdout.write(`${r.path}\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown image command '${sub ?? ''}' (try: disco image fetch, disco image build)`);
  }
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'run':
      return cmdRun(rest);
    case 'image':
      return cmdImage(rest);
    case 'vm':
      return cmdVm(rest);
    case 'serve':
      return cmdServe(rest);
    case 'exec':
      return cmdExec(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command '${cmd}' (try disco --help)`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    const known = e instanceof UsageError || e instanceof ElfError || e instanceof MachineError || e instanceof ImageError || e instanceof ApiServerError || e instanceof ClientError || (e instanceof TypeError && (e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS'));
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`disco: ${msg}\n`);
    if (process.env['DISCO_DEBUG'] && e instanceof Error) process.stderr.write(`${e.stack ?? ''}\n`);
    process.exit(known ? 2 : 70);
  },
);
