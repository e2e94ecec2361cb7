#!/usr/bin/env node
/**
 * The `disco` command line. Errors are one line on stderr and a non-zero exit;
 * DISCO_DEBUG=1 adds the stack for developers.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { ClockMode } from '../cpu/clock.js';
import { ElfError } from '../machine/elf.js';
import { MAX_CPUS, runBareMetal } from '../machine/baremetal.js';

class UsageError extends Error {}

const USAGE = `usage: disco <command> [options]

commands:
  run --bios FILE.elf     load a bare-metal RISC-V ELF at its physical addresses and run it
                          from its entry point in M-mode (HTIF tohost ends the run)

options of run:
  --bios FILE             the ELF image
  --cpus N                harts, 1 to ${MAX_CPUS} (default 1); several run on worker threads
  --memory MiB            RAM at 0x80000000 (default 128)
  --max-instructions N    stop a runaway guest after N instructions per hart (exit 2)
  --clock host|instructions  what mtime follows (default host)
  -h, --help              this text
`;

function intOption(v: string | undefined, name: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^[0-9]+$/.test(v)) throw new UsageError(`--${name} needs a whole number, got '${v}'`);
  const n = Number(v);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

async function cmdRun(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      bios: { type: 'string' },
      cpus: { type: 'string' },
      memory: { type: 'string' },
      'max-instructions': { type: 'string' },
      clock: { type: 'string' },
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
  if (!values.bios) throw new UsageError('run needs --bios FILE.elf');
  const clock = values.clock ?? 'host';
  if (clock !== 'host' && clock !== 'instructions') throw new UsageError(`--clock must be host or instructions, got '${clock}'`);
  const cpus = intOption(values.cpus, 'cpus', 1, MAX_CPUS, 1);
  const memMiB = intOption(values.memory, 'memory', 128, 2048, 128);
  const maxInstructions = intOption(values['max-instructions'], 'max-instructions', 1, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  let image: Uint8Array;
  try {
    image = readFileSync(values.bios);
  } catch (e) {
    throw new UsageError(`cannot read ${values.bios}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const outcome = await runBareMetal(image, { ramBytes: memMiB * 1024 * 1024, cpus, clock: clock as ClockMode, maxInstructions });
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

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'run':
      return cmdRun(rest);
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
    const known = e instanceof UsageError || e instanceof ElfError || (e instanceof TypeError && (e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS'));
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`disco: ${msg}\n`);
    if (process.env['DISCO_DEBUG'] && e instanceof Error) process.stderr.write(`${e.stack ?? ''}\n`);
    process.exit(known ? 2 : 70);
  },
);
