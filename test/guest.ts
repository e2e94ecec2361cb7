/**
 * Drives a guest through its console from a test or a benchmark: wait for
 * text, type commands. By default the guest is `disco run ARGS` (as the
 * installed command starts it: discoNode); `command`
 * runs another program (QEMU, for comparisons).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { cli, discoNode } from './support.js';

export class Guest {
  readonly proc: ChildProcessWithoutNullStreams;
  output = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  private waiters: { re: RegExp; from: number; resolve: (m: RegExpMatchArray) => void }[] = [];

  constructor(args: readonly string[], command: readonly string[] = [...discoNode, cli, 'run']) {
    this.proc = spawn(command[0]!, [...command.slice(1), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stdout.setEncoding('utf8');
    this.proc.stderr.setEncoding('utf8');
    this.proc.stdout.on('data', (d: string) => {
      this.output += d;
      this.check();
    });
    this.proc.stderr.on('data', (d: string) => { this.stderr += d; });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code) => resolve(code)));
  }

  private check(): void {
    this.waiters = this.waiters.filter((w) => {
      const m = this.output.slice(w.from).match(w.re);
      if (m) w.resolve(m);
      return !m;
    });
  }

  /** Resolves when `re` appears in the output after position `from` (default: anywhere). */
  waitFor(re: RegExp, timeoutMs: number, from = 0): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${re}; output so far:\n${this.output.slice(-3000)}\nstderr:\n${this.stderr}`)), timeoutMs);
      this.waiters.push({ re, from, resolve: (m) => { clearTimeout(t); resolve(m); } });
      this.check();
    });
  }

  /** Types a command line and waits for `expect` in what follows. */
  async run(command: string, expect: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
    const from = this.output.length;
    this.proc.stdin.write(`${command}\n`);
    return this.waitFor(expect, timeoutMs, from);
  }

  /**
   * Waits until the shell answers: the first line typed after the prompt can be
   * taken as the reply to the line editor's cursor-position query (ESC [6n),
   * so type a probe until it echoes back evaluated.
   */
  async settle(timeoutMs = 60_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      try {
        await this.run('echo settled-$((6*7))', /settled-42/, 3_000);
        return;
      } catch (e) {
        if (Date.now() > end) throw e;
      }
    }
  }

  kill(): void {
    this.proc.kill('SIGKILL');
  }
}
