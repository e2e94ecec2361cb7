/**
 * The host end of virtio-vsock, in Firecracker's model: the VM listens on a
 * Unix socket; a host program connects and writes `CONNECT <port>\n` to reach
 * guest port <port>, and once the guest accepts, reads `OK <host port>\n` and
 * then the connection's bytes. A guest connection to host port P connects to
 * the Unix socket `<socket>_P`.
 */
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface VsockHostEvents {
  /** A host client asked for guest port `port`; `initial` is what it sent after its CONNECT line. */
  connect(port: number, sock: Socket, initial: Uint8Array): void;
}

/** The longest CONNECT line we wait for. */
const MAX_LINE = 64;
const CONNECT_LINE = /^CONNECT ([0-9]{1,10})\r?$/;

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ path });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => { s.destroy(); resolve(false); });
  });
}

export class VsockHost {
  private server: Server | null = null;
  private listening: Promise<void> | null = null;
  private closed = false;
  private readonly clients = new Set<Socket>();

  constructor(readonly path: string, private readonly events: VsockHostEvents, private readonly log: (line: string) => void) {}

  /** Listens on the socket path, replacing a stale socket file; rejects with a one-line Error. */
  listen(): Promise<void> {
    // One attempt at a time; after a failure the next call tries again.
    this.listening ??= this.startListening().catch((e: unknown) => { this.listening = null; throw e; });
    return this.listening;
  }


  private async startListening(): Promise<void> {
    if (existsSync(this.path) && lstatSync(this.path).isSocket()) {
      // A socket file is stale unless something still answers on it (another VM of the same name).
      if (await answers(this.path)) throw new Error(`vsock: ${this.path} is in use by another process`);
      try { unlinkSync(this.path); } catch { /* listen reports it */ }
    }
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, (s) => this.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => reject(new Error(`vsock: cannot listen on ${this.path}: ${e.code ?? e.message}`)));
      server.listen(this.path, () => resolve());
    });
    server.on('error', (e) => this.log(`vsock: ${e.message}`));
    this.server = server;
    if (this.closed) await this.close();
  }

  private accept(s: Socket): void {
    this.clients.add(s);
    s.on('close', () => this.clients.delete(s));
    s.on('error', () => {});
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      const nl = buf.indexOf(0x0a);
      if (nl < 0) {
        if (buf.length > MAX_LINE) s.destroy();
        return;
      }
      s.off('data', onData);
      s.pause();
      const m = CONNECT_LINE.exec(buf.subarray(0, nl).toString('latin1'));
      const port = m ? Number(m[1]) : -1;
      if (port < 0 || port > 0xffffffff) {
        s.end('ERROR expected CONNECT <port>\n');
        return;
      }
      const rest = buf.subarray(nl + 1);
      this.events.connect(port, s, new Uint8Array(rest.buffer, rest.byteOffset, rest.length));
    };
    s.on('data', onData);
  }

  /** Connects to `${path}_${port}` for a guest connection; `done(null)` if nothing listens there. */
  connectOut(port: number, done: (sock: Socket | null) => void): void {
    const s = createConnection({ path: `${this.path}_${port}`, allowHalfOpen: true });
    let settled = false;
    s.once('connect', () => {
      settled = true;
      this.clients.add(s);
      s.on('close', () => this.clients.delete(s));
      done(s);
    });
    s.once('error', () => {
      if (settled) return;
      settled = true;
      s.destroy();
      done(null);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    // A listen still under way finishes first (and then closes again, seeing `closed`).
    if (this.listening && !this.server) await this.listening.catch(() => {});
    for (const c of this.clients) c.destroy();
    this.clients.clear();
    const server = this.server;
    this.server = null;
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    this.listening = null;
    try { unlinkSync(this.path); } catch { /* already gone */ }
  }
}
