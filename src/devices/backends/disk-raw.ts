/**
 * A raw image file: byte n of the disk is byte n of the file. Read-only
 * drives open the file O_RDONLY (no lock: many VMs may read one image);
 * writable ones take PATH.lock so two VMs never write one image.
 */
import { constants as fsConstants, fstatSync, openSync, closeSync } from 'node:fs';
import { MachineError } from '../../machine/errors.js';
import type { DiskBackend } from './disk.js';
import { SECTOR_SIZE, closeFd, datasync, preadFull, pwriteFull, writeZeroRange } from './disk-io.js';
import { ImageLock } from './disk-lock.js';

export interface RawOptions {
  readonly readonly: boolean;
}

export class RawDisk implements DiskBackend {
  readonly discardAlignment = 4096;
  private closed = false;

  private constructor(
    private readonly fd: number,
    readonly size: number,
    readonly readonly: boolean,
    private readonly lock: ImageLock | null,
  ) {}

  static open(path: string, opts: RawOptions): RawDisk {
    if (opts.readonly) ImageLock.assertNotWritten(path, 'disk image');
    const lock = opts.readonly ? null : ImageLock.acquire(path);
    let fd = -1;
    try {
      try {
        fd = openSync(path, opts.readonly ? fsConstants.O_RDONLY : fsConstants.O_RDWR);
      } catch (e) {
        throw new MachineError(`cannot open disk image ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      const st = fstatSync(fd);
      if (!st.isFile()) throw new MachineError(`disk image ${path} is not a regular file`);
      if (st.size % SECTOR_SIZE !== 0) throw new MachineError(`disk image ${path} is ${st.size} bytes, not a multiple of ${SECTOR_SIZE}`);
      if (st.size === 0) throw new MachineError(`disk image ${path} is empty`);
      return new RawDisk(fd, st.size, opts.readonly, lock);
    } catch (e) {
      if (fd >= 0) closeSync(fd);
      lock?.release();
      throw e;
    }
  }

  private check(): void {
    if (this.closed) throw new Error('disk is closed');
  }

  private writable(): void {
    this.check();
    if (this.readonly) throw new Error('disk is read-only');
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    this.check();
    return preadFull(this.fd, offset, length);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.writable();
    return pwriteFull(this.fd, offset, data);
  }

  async flush(): Promise<void> {
    this.check();
    // Nothing to make durable on a read-only file.
    if (!this.readonly) await datasync(this.fd);
  }

  async discard(offset: number, length: number): Promise<void> {
    this.writable();
    // Node has no fallocate(PUNCH_HOLE); a discard that frees nothing is allowed (5.2.6.2).
    void offset; void length;
  }

  async writeZeroes(offset: number, length: number, mayUnmap: boolean): Promise<void> {
    this.writable();
    void mayUnmap;
    return writeZeroRange(this.fd, offset, length);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await closeFd(this.fd);
    } finally {
      this.lock?.release();
    }
  }
}
