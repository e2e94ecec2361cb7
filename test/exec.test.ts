// `disco exec` against a fake VM: a Unix socket that answers CONNECT like the
// vsock device and then speaks the guest agent protocol (docs/guest-agent.md).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, test } from 'node:test';
import {
  decodeExec, decodeExit, encodeExec, encodeExit, encodeFrame, ExecError, FRAME_ERROR, FRAME_EXEC, FRAME_EXIT, FRAME_STDERR,
  FRAME_STDIN, FRAME_STDIN_EOF, FRAME_STDOUT, FrameDecoder, MAX_DATA_PAYLOAD, runExec, type ExecRequest,
} from '../src/cli/exec.js';
import { AGENT_PORT } from '../src/image/agent.js';
import { cli } from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'disco-exec-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface FakeVm {
  server: Server;
  path: string;
  /** The requests the agent received. */
  requests: ExecRequest[];
  connects: number;
  close(): Promise<void>;
}

/**
 * A VM whose agent runs: `echo ARGS` (stdout), `fail` (stderr, exit 3), `kill N` (signal N), `cat` (stdin back,
 * in frames, until EOF), `drop` (the connection dies), `bad` (an ERROR frame). With `refuseFirst` the first
 * connections are closed before OK, as when the guest answers RST.
 */
async function fakeVm(name: string, refuseFirst = 0): Promise<FakeVm> {
  const path = join(dir, `${name}.vsock`);
  const vm: FakeVm = { server: createServer(), path, requests: [], connects: 0, close: async () => {} };
  const socks = new Set<Socket>();
  vm.server = createServer({ allowHalfOpen: true }, (s) => {
    socks.add(s);
    s.on('error', () => {});
    let line = '';
    let dec: FrameDecoder | null = null;
    let req: ExecRequest | null = null;
    let stdin = Buffer.alloc(0);
    const send = (type: number, p?: Uint8Array): boolean => s.write(encodeFrame(type, p));
    const exit = (code: number): void => { send(FRAME_EXIT, encodeExit({ kind: 'exited', code })); s.end(); };
    s.on('data', (d: Buffer) => {
      if (!dec) {
        line += d.toString('latin1');
        const nl = line.indexOf('\n');
        if (nl < 0) return;
        assert.equal(line.slice(0, nl), `CONNECT ${AGENT_PORT}`);
        vm.connects++;
        if (vm.connects <= refuseFirst) { s.destroy(); return; }
        s.write('OK 1073741824\n');
        dec = new FrameDecoder();
        d = Buffer.from(line.slice(nl + 1), 'latin1');
      }
      const frames = dec.push(d);
      assert.ok(typeof frames !== 'string');
      for (const f of frames) {
        if (!req) {
          assert.equal(f.type, FRAME_EXEC);
          req = decodeExec(f.payload);
          assert.ok(req);
          vm.requests.push(req);
          const [cmd, ...args] = req.argv;
          if (cmd === 'echo') { send(FRAME_STDOUT, Buffer.from(`${args.join(' ')}\n`)); exit(0); }
          else if (cmd === 'fail') { send(FRAME_STDERR, Buffer.from('bad\n')); exit(3); }
          else if (cmd === 'kill') { send(FRAME_EXIT, encodeExit({ kind: 'signaled', signal: Number(args[0]) })); s.end(); }
          else if (cmd === 'drop') { send(FRAME_STDOUT, Buffer.from('partial')); s.destroy(); }
          else if (cmd === 'bad') { send(FRAME_ERROR, Buffer.from('unsupported protocol version')); s.end(); }
          continue;
        }
        if (req.argv[0] !== 'cat') continue;
        if (f.type === FRAME_STDIN) {
          assert.ok(f.payload.length > 0 && f.payload.length <= MAX_DATA_PAYLOAD);
          stdin = Buffer.concat([stdin, f.payload]);
          send(FRAME_STDOUT, f.payload);
        } else {
          assert.equal(f.type, FRAME_STDIN_EOF);
          send(FRAME_STDERR, Buffer.from(`${stdin.length} bytes\n`));
          exit(0);
        }
      }
    });
  });
  await new Promise<void>((res) => vm.server.listen(path, res));
  vm.close = () => new Promise<void>((res) => { for (const s of socks) s.destroy(); vm.server.close(() => res()); });
  return vm;
}

async function run(vm: { path: string }, argv: string[], opts: { stdin?: Buffer | null; timeoutMs?: number; env?: string[]; cwd?: string } = {}): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough(), stderr = new PassThrough();
  let out = '', err = '';
  stdout.on('data', (d: Buffer) => { out += d.toString(); });
  stderr.on('data', (d: Buffer) => { err += d.toString(); });
  let stdin: PassThrough | null = null;
  if (opts.stdin) { stdin = new PassThrough(); stdin.end(opts.stdin); }
  const code = await runExec({
    vmName: 'vm', socket: vm.path, request: { argv, env: opts.env ?? [], cwd: opts.cwd ?? '' }, timeoutMs: opts.timeoutMs ?? 5000,
    stdin, stdout, stderr, retryMs: 50,
  });
  return { code, out, err };
}

test('frames: EXEC and EXIT round-trip; the decoder reassembles split input and refuses huge frames', () => {
  const req = { argv: ['sh', '-c', 'echo ü'], env: ['A=1', 'B='], cwd: '/tmp' };
  assert.deepEqual(decodeExec(encodeExec(req)), req);
  assert.equal(decodeExec(new Uint8Array(5)), null);
  const bad = Buffer.from(encodeExec(req));
  bad.writeUInt32LE(2, 0);
  assert.equal(decodeExec(bad), null, 'version 2');
  assert.deepEqual(decodeExit(encodeExit({ kind: 'signaled', signal: 9 })), { kind: 'signaled', signal: 9 });
  assert.deepEqual(decodeExit(encodeExit({ kind: 'exited', code: 255 })), { kind: 'exited', code: 255 });
  assert.equal(decodeExit(new Uint8Array(7)), null);
  const bytes = Buffer.concat([encodeFrame(FRAME_STDOUT, Buffer.from('abc')), encodeFrame(FRAME_STDIN_EOF), encodeFrame(FRAME_STDERR, Buffer.from('x'))]);
  const dec = new FrameDecoder();
  const got = [];
  for (const b of bytes) {
    const r = dec.push(Uint8Array.of(b));
    assert.ok(typeof r !== 'string');
    got.push(...r);
  }
  assert.deepEqual(got.map((f) => [f.type, Buffer.from(f.payload).toString()]), [[FRAME_STDOUT, 'abc'], [FRAME_STDIN_EOF, ''], [FRAME_STDERR, 'x']]);
  const huge = Buffer.alloc(5);
  huge[0] = FRAME_STDOUT;
  huge.writeUInt32LE(MAX_DATA_PAYLOAD + 1, 1);
  assert.equal(typeof new FrameDecoder(MAX_DATA_PAYLOAD).push(huge), 'string');
});

test('output, stderr, exit codes and signals', async () => {
  const vm = await fakeVm('a');
  assert.deepEqual(await run(vm, ['echo', 'hello', 'world'], { env: ['X=1'], cwd: '/root' }), { code: 0, out: 'hello world\n', err: '' });
  assert.deepEqual(vm.requests[0], { argv: ['echo', 'hello', 'world'], env: ['X=1'], cwd: '/root' });
  assert.deepEqual(await run(vm, ['fail']), { code: 3, out: '', err: 'bad\n' });
  assert.equal((await run(vm, ['kill', '15'])).code, 128 + 15);
  assert.equal((await run(vm, ['kill', '9'])).code, 128 + 9);
  await vm.close();
});

test('stdin is streamed in frames up to EOF; without stdin the command gets EOF at once', async () => {
  const vm = await fakeVm('b');
  const data = Buffer.alloc(200_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
  const r = await run(vm, ['cat'], { stdin: data });
  assert.equal(r.code, 0);
  assert.equal(r.err, '200000 bytes\n');
  assert.deepEqual(Buffer.from(r.out, 'latin1').length, 200_000);
  assert.deepEqual(await run(vm, ['cat'], { stdin: null }), { code: 0, out: '', err: '0 bytes\n' });
  await vm.close();
});

test('errors: no such VM, a stale socket, the agent not answering, a lost connection, an agent error', async () => {
  await assert.rejects(run({ path: join(dir, 'nope.vsock') }, ['echo']), (e: unknown) => e instanceof ExecError && e.message === 'no VM named vm is running');
  // A file nobody listens on, as a crashed VM leaves behind.
  const stale = join(dir, 'stale.vsock');
  writeFileSync(stale, '');
  await assert.rejects(run({ path: stale }, ['echo']), /no VM named vm is running/);
  // The guest refuses (no agent yet) a few times, then the agent answers: exec retries.
  const slow = await fakeVm('c', 3);
  assert.equal((await run(slow, ['echo', 'late'])).out, 'late\n');
  assert.equal(slow.connects, 4);
  await slow.close();
  const never = await fakeVm('d', 1000);
  const t0 = Date.now();
  await assert.rejects(run(never, ['echo'], { timeoutMs: 400 }), /the guest agent in VM vm did not answer within 0 s|did not answer/);
  assert.ok(Date.now() - t0 < 2000);
  const vm = await fakeVm('e');
  await assert.rejects(run(vm, ['drop']), /connection to VM vm lost/);
  await assert.rejects(run(vm, ['bad']), /guest agent: unsupported protocol version/);
  await never.close();
  await vm.close();
});

/** Runs the real CLI (asynchronously: the fake VM lives in this process). */
function cliRun(args: string[], input: string | null): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [cli, ...args], { env: { ...process.env, DISCO_RUN_DIR: dir }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    if (input !== null) p.stdin.end(input); else p.stdin.end();
    p.on('exit', (code) => resolve({ code, out, err }));
  });
}

test('the disco exec command: exit code, stdout and stderr, stdin from a pipe, one-line errors', async () => {
  const vm = await fakeVm('cli');
  assert.deepEqual(await cliRun(['exec', 'cli', '--', 'echo', '-n', 'x'], null), { code: 0, out: '-n x\n', err: '' });
  assert.deepEqual(await cliRun(['exec', 'cli', '--', 'fail'], null), { code: 3, out: '', err: 'bad\n' });
  assert.deepEqual(await cliRun(['exec', 'cli', '--socket', vm.path, '--', 'cat'], 'piped'), { code: 0, out: 'piped', err: '5 bytes\n' });
  assert.deepEqual(await cliRun(['exec', 'cli', '--', 'kill', '9'], null), { code: 137, out: '', err: '' });
  assert.deepEqual(await cliRun(['exec', 'ghost', '--', 'true'], null), { code: 255, out: '', err: 'disco: no VM named ghost is running\n' });
  const noCmd = await cliRun(['exec', 'cli'], null);
  assert.equal(noCmd.code, 2);
  assert.match(noCmd.err, /^disco: .*no command given.*\n$/);
  const badT = await cliRun(['exec', 'cli', '--timeout', 'x', '--', 'true'], null);
  assert.equal(badT.code, 2);
  await vm.close();
});
