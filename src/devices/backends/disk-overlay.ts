/**
 * A copy-on-write overlay above a read-only base image (format: see
 * docs/disk-overlay.md). The overlay file holds a header, a cluster table
 * with one entry per cluster of the disk, and data clusters appended as the
 * guest writes. The base is opened O_RDONLY and never written, so many
 * overlays (many VMs) can share one base.
 *
 * Crash safety: a new cluster's data is written before any table entry that
 * points to it, and table entries reach the file only in `flush`, between two
 * datasyncs: data first, then the entries, then the entries made durable. So
 * after a crash the table on disk never points at data that was not written,
 * and everything before a completed flush is there. Clusters freed by discard
 * or write-zeroes are reused only after a flush has removed every table entry
 * on disk that referred to them.
 */
import { closeSync, constants as fsConstants, fdatasyncSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { MachineError } from '../../machine/errors.js';
import type { DiskBackend } from './disk.js';
import { IO_CHUNK, SECTOR_SIZE, closeFd, datasync, preadFull, pwriteFull, writeZeroRange } from './disk-io.js';
import { ImageLock } from './disk-lock.js';

/** "DSCOOVL" and a NUL. */
export const OVERLAY_MAGIC = Uint8Array.of(0x44, 0x53, 0x43, 0x4f, 0x4f, 0x56, 0x4c, 0x00);
export const OVERLAY_VERSION = 1;
export const OVERLAY_HEADER_SIZE = 4096;
export const DEFAULT_CLUSTER_SIZE = 64 * 1024;
/** Table entry: the cluster reads from the base image. */
export const CLUSTER_UNALLOCATED = 0;
/** Table entry: the cluster reads as zeros. */
export const CLUSTER_ZERO = 1;

// Header field offsets (little-endian).
const H_MAGIC = 0, H_VERSION = 8, H_CLUSTER_SIZE = 12, H_VIRTUAL_SIZE = 16, H_BASE_SIZE = 24, H_TABLE_OFFSET = 32,
  H_CLUSTER_COUNT = 40, H_DATA_OFFSET = 48, H_BASE_PATH_LEN = 56, H_BASE_PATH = 60;
const MAX_BASE_PATH = OVERLAY_HEADER_SIZE - H_BASE_PATH;

export interface OverlayHeader {
  readonly clusterSize: number;
  readonly virtualSize: number;
  readonly baseSize: number;
  readonly tableOffset: number;
  readonly clusterCount: number;
  readonly dataOffset: number;
  readonly basePath: string;
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

function u64(v: DataView, off: number): number {
  const lo = v.getUint32(off, true), hi = v.getUint32(off + 4, true);
  return hi >= 0x200000 ? Number.NaN : hi * 2 ** 32 + lo;
}

function setU64(v: DataView, off: number, n: number): void {
  v.setUint32(off, n % 2 ** 32, true);
  v.setUint32(off + 4, Math.floor(n / 2 ** 32), true);
}

export function encodeHeader(h: OverlayHeader): Uint8Array {
  const b = new Uint8Array(OVERLAY_HEADER_SIZE);
  const v = new DataView(b.buffer);
  const path = new TextEncoder().encode(h.basePath);
  if (path.length > MAX_BASE_PATH) throw new MachineError(`base image path is longer than ${MAX_BASE_PATH} bytes`);
  b.set(OVERLAY_MAGIC, H_MAGIC);
  v.setUint32(H_VERSION, OVERLAY_VERSION, true);
  v.setUint32(H_CLUSTER_SIZE, h.clusterSize, true);
  setU64(v, H_VIRTUAL_SIZE, h.virtualSize);
  setU64(v, H_BASE_SIZE, h.baseSize);
  setU64(v, H_TABLE_OFFSET, h.tableOffset);
  setU64(v, H_CLUSTER_COUNT, h.clusterCount);
  setU64(v, H_DATA_OFFSET, h.dataOffset);
  v.setUint32(H_BASE_PATH_LEN, path.length, true);
  b.set(path, H_BASE_PATH);
  return b;
}

/** The header's fields, or a reason it is not a valid overlay header. */
export function decodeHeader(b: Uint8Array): OverlayHeader | string {
  if (b.length < OVERLAY_HEADER_SIZE) return 'the file is shorter than its header';
  if (!OVERLAY_MAGIC.every((m, i) => b[i] === m)) return 'it is not a Disco overlay (bad magic)';
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const version = v.getUint32(H_VERSION, true);
  if (version !== OVERLAY_VERSION) return `its version is ${version}, not ${OVERLAY_VERSION}`;
  const clusterSize = v.getUint32(H_CLUSTER_SIZE, true);
  if (clusterSize < 4096 || clusterSize > 2 ** 21 || (clusterSize & (clusterSize - 1)) !== 0) return `cluster size ${clusterSize} is not a power of 2 in 4 KiB..2 MiB`;
  const virtualSize = u64(v, H_VIRTUAL_SIZE), baseSize = u64(v, H_BASE_SIZE), tableOffset = u64(v, H_TABLE_OFFSET);
  const clusterCount = u64(v, H_CLUSTER_COUNT), dataOffset = u64(v, H_DATA_OFFSET);
  const pathLen = v.getUint32(H_BASE_PATH_LEN, true);
  if (!(virtualSize > 0) || virtualSize % SECTOR_SIZE) return `virtual size ${virtualSize} is not a positive multiple of ${SECTOR_SIZE}`;
  if (baseSize !== virtualSize) return 'its base size differs from its virtual size';
  if (clusterCount !== Math.ceil(virtualSize / clusterSize)) return `cluster count ${clusterCount} does not match the virtual size`;
  if (tableOffset !== OVERLAY_HEADER_SIZE) return `table offset ${tableOffset} is not ${OVERLAY_HEADER_SIZE}`;
  if (dataOffset !== alignUp(tableOffset + 8 * clusterCount, clusterSize)) return `data offset ${dataOffset} is not where the table ends`;
  if (pathLen > MAX_BASE_PATH) return 'base path is too long';
  let basePath: string;
  try {
    basePath = new TextDecoder('utf-8', { fatal: true }).decode(b.subarray(H_BASE_PATH, H_BASE_PATH + pathLen));
  } catch {
    return 'base path is not UTF-8';
  }
  return { clusterSize, virtualSize, baseSize, tableOffset, clusterCount, dataOffset, basePath };
}

export interface OverlayOptions {
  readonly readonly: boolean;
  /** Cluster size for a new overlay (a power of 2, 4 KiB..2 MiB). */
  readonly clusterSize?: number;
  /**
   * Milliseconds after a table change before the overlay flushes by itself
   * (0: only when asked). Default 5000. The guest's own flushes are what it
   * can rely on; this bounds what a killed process loses, as the host's page
   * cache does for a raw image.
   */
  readonly autoFlushMs?: number;
}

function readFully(fd: number, buf: Uint8Array, pos: number): number {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, pos + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

function writeFully(fd: number, buf: Uint8Array, pos: number): void {
  for (let done = 0; done < buf.length;) done += writeSync(fd, buf, done, buf.length - done, pos + done);
}

export class OverlayDisk implements DiskBackend {
  readonly size: number;
  readonly discardAlignment: number;
  private readonly cs: number;
  /** The cluster table as the guest sees it (entries not yet flushed included). */
  private readonly table: Float64Array;
  /** Clusters whose entry differs from the file's table. */
  private dirty = new Set<number>();
  /** Data clusters no on-disk entry refers to: free to allocate. */
  private free: number[] = [];
  /** Data clusters dropped since the last flush: on-disk entries may still point at them. */
  private pendingFree: number[] = [];
  /** Where the next appended data cluster goes. */
  private end: number;
  /** Operations run one at a time, in order (the table is shared state). */
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly autoFlushMs: number;

  private constructor(
    private readonly fd: number,
    private readonly baseFd: number,
    readonly readonly: boolean,
    readonly header: OverlayHeader,
    table: Float64Array,
    fileSize: number,
    private readonly lock: ImageLock | null,
    autoFlushMs: number,
  ) {
    this.autoFlushMs = autoFlushMs;
    this.size = header.virtualSize;
    this.cs = header.clusterSize;
    this.discardAlignment = header.clusterSize;
    this.table = table;
    this.end = Math.max(header.dataOffset, alignUp(fileSize, this.cs));
    // Clusters a crash left behind (written, never referenced by a flushed entry) are free.
    const used = new Set<number>();
    for (const e of table) if (e > CLUSTER_ZERO) used.add(e);
    for (let off = header.dataOffset; off < this.end; off += this.cs) if (!used.has(off)) this.free.push(off);
  }

  /**
   * Opens the overlay at `path` above the base image `basePath`, creating it
   * if it does not exist (unless read-only). Throws MachineError for a missing
   * base, a malformed overlay or a base whose size changed.
   */
  static open(path: string, basePath: string, opts: OverlayOptions): OverlayDisk {
    let baseFd = -1, fd = -1;
    // The base must not change under its overlays; a read-only overlay must not change under its reader.
    ImageLock.assertNotWritten(basePath, 'base image');
    if (opts.readonly) ImageLock.assertNotWritten(path, 'overlay');
    const lock = opts.readonly ? null : ImageLock.acquire(path);
    try {
      try {
        baseFd = openSync(basePath, fsConstants.O_RDONLY);
      } catch (e) {
        throw new MachineError(`cannot open base image ${basePath}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      const bst = fstatSync(baseFd);
      if (!bst.isFile()) throw new MachineError(`base image ${basePath} is not a regular file`);
      if (bst.size === 0 || bst.size % SECTOR_SIZE) throw new MachineError(`base image ${basePath} is ${bst.size} bytes, not a positive multiple of ${SECTOR_SIZE}`);
      try {
        fd = openSync(path, opts.readonly ? fsConstants.O_RDONLY : fsConstants.O_RDWR);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' || opts.readonly) throw new MachineError(`cannot open overlay ${path}: ${code ?? (e as Error).message}`);
        fd = OverlayDisk.create(path, basePath, bst.size, opts.clusterSize ?? DEFAULT_CLUSTER_SIZE);
      }
      const st = fstatSync(fd);
      const hb = new Uint8Array(OVERLAY_HEADER_SIZE);
      readFully(fd, hb, 0);
      const h = decodeHeader(hb);
      if (typeof h === 'string') throw new MachineError(`overlay ${path} is not usable: ${h}`);
      if (h.baseSize !== bst.size) throw new MachineError(`base image ${basePath} of overlay ${path} changed size (${h.baseSize} bytes when the overlay was made, ${bst.size} now)`);
      const tb = new Uint8Array(8 * h.clusterCount);
      if (readFully(fd, tb, h.tableOffset) !== tb.length) throw new MachineError(`overlay ${path} is truncated (its cluster table is incomplete)`);
      const tv = new DataView(tb.buffer);
      const table = new Float64Array(h.clusterCount);
      const seen = new Set<number>();
      for (let i = 0; i < h.clusterCount; i++) {
        const e = u64(tv, 8 * i);
        if (e > CLUSTER_ZERO && (e % h.clusterSize || e < h.dataOffset || e + h.clusterSize > alignUp(st.size, h.clusterSize) || seen.has(e))) {
          throw new MachineError(`overlay ${path} is corrupt: cluster ${i} has table entry ${e}`);
        }
        if (Number.isNaN(e) || (e > CLUSTER_ZERO && e < h.dataOffset)) throw new MachineError(`overlay ${path} is corrupt: cluster ${i} has a bad table entry`);
        if (e > CLUSTER_ZERO) seen.add(e);
        table[i] = e;
      }
      return new OverlayDisk(fd, baseFd, opts.readonly, h, table, st.size, lock, opts.autoFlushMs ?? 5000);
    } catch (e) {
      if (fd >= 0) closeSync(fd);
      if (baseFd >= 0) closeSync(baseFd);
      lock?.release();
      if (e instanceof MachineError) throw e;
      throw new MachineError(`cannot open overlay ${path}: ${(e as Error).message}`);
    }
  }

  /** Writes a new overlay's header and empty table (made durable before use); returns its descriptor. */
  private static create(path: string, basePath: string, baseSize: number, clusterSize: number): number {
    if (clusterSize < 4096 || clusterSize > 2 ** 21 || (clusterSize & (clusterSize - 1)) !== 0) throw new MachineError(`overlay cluster size ${clusterSize} is not a power of 2 in 4 KiB..2 MiB`);
    const clusterCount = Math.ceil(baseSize / clusterSize);
    const tableOffset = OVERLAY_HEADER_SIZE;
    const header: OverlayHeader = {
      clusterSize, virtualSize: baseSize, baseSize, tableOffset, clusterCount,
      dataOffset: alignUp(tableOffset + 8 * clusterCount, clusterSize), basePath,
    };
    const bytes = encodeHeader(header);
    let fd: number;
    try {
      fd = openSync(path, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o644);
    } catch (e) {
      throw new MachineError(`cannot create overlay ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    try {
      // An all-zero table (every cluster reads the base), written out so the file has its full table.
      const zeros = new Uint8Array(Math.min(IO_CHUNK, 8 * clusterCount));
      for (let done = 0; done < 8 * clusterCount;) {
        const n = Math.min(zeros.length, 8 * clusterCount - done);
        writeFully(fd, zeros.subarray(0, n), tableOffset + done);
        done += n;
      }
      writeFully(fd, bytes, 0);
      fdatasyncSync(fd);
      return fd;
    } catch (e) {
      closeSync(fd);
      throw new MachineError(`cannot create overlay ${path}: ${(e as Error).message}`);
    }
  }

  /** Runs `op` after every operation queued before it. */
  private serial<T>(op: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error('disk is closed'));
    const run = this.tail.then(op, op);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private writable(): void {
    if (this.readonly) throw new Error('disk is read-only');
  }

  /** Calls `fn` for each cluster piece of [offset, offset + length): cluster index, offset in it, length, offset in the request. */
  private static pieces(cs: number, offset: number, length: number): { c: number; inner: number; n: number; at: number }[] {
    const out: { c: number; inner: number; n: number; at: number }[] = [];
    for (let at = 0; at < length;) {
      const pos = offset + at;
      const c = Math.floor(pos / cs), inner = pos - c * cs;
      const n = Math.min(cs - inner, length - at);
      out.push({ c, inner, n, at });
      at += n;
    }
    return out;
  }

  /** The bytes a cluster's piece holds now. */
  private async readPiece(c: number, inner: number, n: number): Promise<Uint8Array> {
    const e = this.table[c]!;
    if (e === CLUSTER_ZERO) return new Uint8Array(n);
    if (e === CLUSTER_UNALLOCATED) {
      // The last cluster may extend past the end of the disk; the base ends there.
      const pos = c * this.cs + inner;
      const avail = Math.max(0, Math.min(n, this.size - pos));
      const b = new Uint8Array(n);
      if (avail > 0) b.set(await preadFull(this.baseFd, pos, avail));
      return b;
    }
    return preadFull(this.fd, e + inner, n);
  }

  private allocate(): number {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    const off = this.end;
    this.end += this.cs;
    return off;
  }

  private setEntry(c: number, e: number): void {
    const old = this.table[c]!;
    if (old === e) return;
    if (old > CLUSTER_ZERO) this.pendingFree.push(old);
    this.table[c] = e;
    this.dirty.add(c);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.autoFlushMs <= 0 || this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      // A failure here is reported by the guest's next flush, which retries the same entries.
      if (!this.closed) this.flush().catch(() => undefined);
    }, this.autoFlushMs);
    this.timer.unref();
  }

  /** Writes `data` at `inner` in cluster c, allocating the cluster (copy-on-write) if it has no data of its own. */
  private async writePiece(c: number, inner: number, data: Uint8Array): Promise<void> {
    const e = this.table[c]!;
    if (e > CLUSTER_ZERO) {
      await pwriteFull(this.fd, e + inner, data);
      return;
    }
    let cluster: Uint8Array;
    if (data.length === this.cs) cluster = data;
    else {
      // Copy-on-write: the cluster's current contents (base or zeros) around the new bytes.
      cluster = await this.readPiece(c, 0, this.cs);
      cluster.set(data, inner);
    }
    const off = this.allocate();
    try {
      await pwriteFull(this.fd, off, cluster);
    } catch (err) {
      this.free.push(off);
      throw err;
    }
    // Only now may an entry point at it (and it reaches the file only in flush).
    this.setEntry(c, off);
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return this.serial(async () => {
      const out = new Uint8Array(length);
      for (const p of OverlayDisk.pieces(this.cs, offset, length)) out.set(await this.readPiece(p.c, p.inner, p.n), p.at);
      return out;
    });
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    return this.serial(async () => {
      this.writable();
      for (const p of OverlayDisk.pieces(this.cs, offset, data.length)) await this.writePiece(p.c, p.inner, data.subarray(p.at, p.at + p.n));
    });
  }

  discard(offset: number, length: number): Promise<void> {
    return this.serial(async () => {
      this.writable();
      // Whole clusters with data of their own give it up (and read as zeros); the rest is left as is.
      for (const p of OverlayDisk.pieces(this.cs, offset, length)) {
        if (p.n === this.cs && this.table[p.c]! > CLUSTER_ZERO) this.setEntry(p.c, CLUSTER_ZERO);
      }
    });
  }

  writeZeroes(offset: number, length: number, mayUnmap: boolean): Promise<void> {
    return this.serial(async () => {
      this.writable();
      for (const p of OverlayDisk.pieces(this.cs, offset, length)) {
        const e = this.table[p.c]!;
        if (e === CLUSTER_ZERO) continue;
        if (p.n === this.cs && (mayUnmap || e === CLUSTER_UNALLOCATED)) this.setEntry(p.c, CLUSTER_ZERO);
        else if (e > CLUSTER_ZERO) await writeZeroRange(this.fd, e + p.inner, p.n);
        else await this.writePiece(p.c, p.inner, new Uint8Array(p.n));
      }
    });
  }

  flush(): Promise<void> {
    return this.serial(async () => {
      if (this.readonly) return;
      // 1. The data the new entries point at.
      await datasync(this.fd);
      if (this.dirty.size === 0) return;
      // 2. The entries, in runs of consecutive clusters; 3. made durable.
      const idx = [...this.dirty].sort((a, b) => a - b);
      for (let i = 0; i < idx.length;) {
        let j = i + 1;
        while (j < idx.length && idx[j] === idx[j - 1]! + 1 && j - i < IO_CHUNK / 8) j++;
        const first = idx[i]!;
        const b = new Uint8Array(8 * (j - i));
        const v = new DataView(b.buffer);
        for (let k = i; k < j; k++) setU64(v, 8 * (k - i), this.table[idx[k]!]!);
        await pwriteFull(this.fd, this.header.tableOffset + 8 * first, b);
        i = j;
      }
      await datasync(this.fd);
      for (const c of idx) this.dirty.delete(c);
      // No entry on disk refers to the dropped clusters any more.
      this.free.push(...this.pendingFree);
      this.pendingFree = [];
    });
  }

  /** Table entry of cluster c (tests and tools). */
  entry(c: number): number {
    return this.table[c] ?? Number.NaN;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    // A clean close keeps what was written, as a flush would.
    const flushed = this.readonly ? Promise.resolve() : this.flush();
    this.closed = true;
    try {
      await flushed;
      await this.tail;
    } finally {
      await Promise.allSettled([closeFd(this.fd), closeFd(this.baseFd)]);
      this.lock?.release();
    }
  }
}
