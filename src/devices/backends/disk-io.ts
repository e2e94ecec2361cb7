/**
 * Asynchronous positioned I/O on file descriptors, for the disk back ends.
 *
 * The factory that opens disks is synchronous (it runs before the guest), so
 * files are opened with openSync; every access afterwards goes through the
 * callback API, which runs in libuv's thread pool and never blocks the vCPU.
 */
import { read as fsRead, write as fsWrite, fdatasync as fsFdatasync, close as fsClose } from 'node:fs';

export const SECTOR_SIZE = 512;

export function preadFull(fd: number, offset: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  return new Promise((resolve, reject) => {
    const step = (done: number): void => {
      if (done === length) { resolve(buf); return; }
      fsRead(fd, buf, done, length - done, offset + done, (err, n) => {
        if (err) reject(err);
        // Past the end of the file: the rest reads as zeros (a sparse tail).
        else if (n === 0) resolve(buf);
        else step(done + n);
      });
    };
    step(0);
  });
}

export function pwriteFull(fd: number, offset: number, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (done: number): void => {
      if (done === data.length) { resolve(); return; }
      fsWrite(fd, data, done, data.length - done, offset + done, (err, n) => {
        if (err) reject(err);
        else if (n === 0) reject(new Error('write made no progress'));
        else step(done + n);
      });
    };
    step(0);
  });
}

export function datasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsFdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsClose(fd, (err) => (err ? reject(err) : resolve())));
}

/** The largest buffer a back end allocates for one step of a long operation. */
export const IO_CHUNK = 1 << 20;

/** Shared zeros for write-zeroes (never written to). */
export const ZEROS = new Uint8Array(IO_CHUNK);

/** Writes zeros over [offset, offset + length) in chunks. */
export async function writeZeroRange(fd: number, offset: number, length: number): Promise<void> {
  for (let done = 0; done < length;) {
    const n = Math.min(IO_CHUNK, length - done);
    await pwriteFull(fd, offset + done, ZEROS.subarray(0, n));
    done += n;
  }
}

