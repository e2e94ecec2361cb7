/** Helpers for the hypervisor's tests and benches: a `disco serve` child process, its API, the probe guests. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { apiRequest, type ApiReply } from '../src/api/client.js';
import { join } from 'node:path';
import { buildDir, discoSpawn, root } from './support.js';

export type ProbeMode = 'VICTIM' | 'HOSTILE' | 'SPIN' | 'SPIN_SMP' | 'FLOOD' | 'IDLE';

/** Builds test/guests/probe.c in one mode as a flat Linux Image; returns its path. */
export function buildProbe(mode: ProbeMode): string {
  mkdirSync(buildDir, { recursive: true });
  const elf = join(buildDir, `probe-${mode}.elf`);
  const img = join(buildDir, `probe-${mode}.img`);
  const dir = join(root, 'test', 'guests');
  execFileSync('riscv64-linux-gnu-gcc', ['-march=rv64gc', '-mabi=lp64d', '-mcmodel=medany', '-O2', '-ffreestanding', '-fno-pic',
    '-nostdlib', '-static', '-no-pie', '-Wl,--build-id=none', `-D${mode}`, '-T', join(dir, 'probe.ld'), join(dir, 'image.S'), join(dir, 'probe.c'), '-o', elf]);
  execFileSync('riscv64-linux-gnu-objcopy', ['-O', 'binary', elf, img]);
  return img;
}

export type Reply = ApiReply;

export function api(socketPath: string, method: string, path: string, body?: unknown, raw?: string): Promise<Reply> {
  return apiRequest(socketPath, method, path, { body, raw, timeoutMs: 180_000 });
}

export interface VmView {
  readonly id: string;
  readonly state: string;
  readonly reason: string | null;
  readonly boots: number;
  readonly reboots: number;
  readonly machine_config: { readonly on_reboot: string };
  readonly memory: { pages_touched: number; frames_mapped: number; pool_frames_free: number; pool_frames_in_use: number };
  readonly cpu: {
    instructions: number; run_ms: number; steal_ms: number; throttled_ms: number; slices: number; exits: Record<string, number>;
    translator: { regions_compiled: number; wasm_bytes: number; compile_ms: number; instructions_interpreted: number } | null;
  };
  readonly console: { bytes: number; dropped_bytes: number };
}

/** A `disco serve` process in a private run directory. */
export class HostProcess {
  readonly dir: string;
  readonly socket: string;
  readonly proc: ChildProcess;
  log = '';
  private readonly exited: Promise<number | null>;

  constructor(args: readonly string[] = []) {
    this.dir = mkdtempSync(join(tmpdir(), 'disco-host-'));
    this.socket = join(this.dir, 'disco.sock');
    this.proc = spawn(...discoSpawn(['serve', '--socket', this.socket, ...args]), {
      env: { ...process.env, DISCO_RUN_DIR: this.dir }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.proc.stderr!.setEncoding('utf8');
    this.proc.stderr!.on('data', (d: string) => { this.log += d; });
    this.exited = new Promise((r) => this.proc.on('exit', (code) => r(code)));
  }

  async ready(timeoutMs = 10_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!this.log.includes('serving on')) {
      if (Date.now() > end) throw new Error(`disco serve did not start: ${this.log}`);
      await sleep(50);
    }
  }

  call(method: string, path: string, body?: unknown, raw?: string): Promise<Reply> {
    return api(this.socket, method, path, body, raw);
  }

  async vm(id: string): Promise<VmView> {
    const r = await this.call('GET', `/vms/${id}`);
    if (r.status !== 200) throw new Error(`GET /vms/${id}: ${r.status} ${r.text}`);
    return r.body as VmView;
  }

  async console(id: string): Promise<string> {
    return (await this.call('GET', `/vms/${id}/console`)).text;
  }

  /** Creates and starts a VM; fails the test on any error. */
  async boot(id: string, body: Record<string, unknown>): Promise<void> {
    const c = await this.call('PUT', `/vms/${id}`, body);
    if (c.status !== 201) throw new Error(`create ${id}: ${c.status} ${c.text}`);
    const s = await this.call('PUT', `/vms/${id}/actions`, { action_type: 'InstanceStart' });
    if (s.status !== 204) throw new Error(`start ${id}: ${s.status} ${s.text}`);
  }

  async waitConsole(id: string, re: RegExp, timeoutMs: number): Promise<string> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const text = await this.console(id);
      if (re.test(text)) return text;
      if (Date.now() > end) throw new Error(`timed out waiting for ${re} on ${id}; console:\n${text.slice(-2000)}\nhost log:\n${this.log}`);
      await sleep(200);
    }
  }

  async waitState(id: string, states: readonly string[], timeoutMs: number): Promise<VmView> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await this.vm(id);
      if (states.includes(v.state)) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${id} to be ${states.join('|')} (is ${v.state})`);
      await sleep(100);
    }
  }

  async stop(): Promise<number | null> {
    this.proc.kill('SIGTERM');
    const code = await Promise.race([this.exited, sleep(10_000).then(() => 'timeout' as const)]);
    if (code === 'timeout') {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
    return code === 'timeout' ? null : code;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
