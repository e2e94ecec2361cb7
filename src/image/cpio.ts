/**
 * A writer for the cpio "newc" format (magic `070701`), the format the Linux
 * kernel unpacks as initramfs (Documentation/driver-api/early-userspace/
 * buffer-format.rst).
 *
 * Each entry is a 110-byte ASCII header — the magic, then 13 fields of 8 hex
 * digits: ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
 * rdevmajor, rdevminor, namesize (with the NUL), check (0) — then the name
 * and its NUL padded to a multiple of 4 bytes (counting from the header's
 * start), then the data padded to a multiple of 4. A symlink's data is its
 * target. The archive ends with an entry named `TRAILER!!!`.
 *
 * The kernel does not create missing parent directories, so the writer adds
 * them (mode 0755) before any entry that needs them. Everything is owned by
 * root, with mtime 0 unless given: the same inputs give the same bytes.
 */

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

export const CPIO_MAGIC = '070701';
export const CPIO_TRAILER = 'TRAILER!!!';
const HEADER_SIZE = 110;

const pad4 = (n: number): number => (4 - (n & 3)) & 3;

export interface EntryOptions {
  /** Permission bits (e.g. 0o755); the file type is implied by the method. */
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly mtime?: number;
}

const encoder = new TextEncoder();

function normalize(path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) throw new Error(`cpio: '..' in path ${path}`);
  return parts.join('/');
}

export class CpioWriter {
  private readonly chunks: Uint8Array[] = [];
  private length = 0;
  private nextIno = 1;
  private readonly paths = new Map<string, number>(); // path → mode of what is there
  private finished = false;

  /** A directory (parents added as needed). Adding an existing directory again is a no-op. */
  directory(path: string, opts: EntryOptions = {}): this {
    const p = normalize(path);
    if (p === '') return this;
    if (this.paths.get(p) === S_IFDIR) return this;
    this.parents(p);
    this.entry(p, S_IFDIR | (opts.mode ?? 0o755), new Uint8Array(0), 2, 0, 0, opts);
    return this;
  }

  /** A regular file. */
  file(path: string, data: Uint8Array | string, opts: EntryOptions = {}): this {
    const p = normalize(path);
    this.parents(p);
    this.entry(p, S_IFREG | (opts.mode ?? 0o644), typeof data === 'string' ? encoder.encode(data) : data, 1, 0, 0, opts);
    return this;
  }

  /** A symbolic link to `target` (stored verbatim). */
  symlink(path: string, target: string, opts: EntryOptions = {}): this {
    const p = normalize(path);
    this.parents(p);
    this.entry(p, S_IFLNK | (opts.mode ?? 0o777), encoder.encode(target), 1, 0, 0, opts);
    return this;
  }

  /** A character device node (e.g. dev/console 5 1, dev/null 1 3). */
  charDevice(path: string, major: number, minor: number, opts: EntryOptions = {}): this {
    const p = normalize(path);
    this.parents(p);
    this.entry(p, S_IFCHR | (opts.mode ?? 0o600), new Uint8Array(0), 1, major, minor, opts);
    return this;
  }

  /** A block device node. */
  blockDevice(path: string, major: number, minor: number, opts: EntryOptions = {}): this {
    const p = normalize(path);
    this.parents(p);
    this.entry(p, S_IFBLK | (opts.mode ?? 0o600), new Uint8Array(0), 1, major, minor, opts);
    return this;
  }

  /** Whether an entry was added at `path`. */
  has(path: string): boolean {
    return this.paths.has(normalize(path));
  }

  /** Appends the trailer and returns the archive (padded to 512 bytes, as GNU cpio does). */
  finish(): Uint8Array {
    if (this.finished) throw new Error('cpio: finish() called twice');
    this.finished = true;
    this.raw(CPIO_TRAILER, 0, new Uint8Array(0), 1, 0, 0, {}, 0);
    const tail = (512 - (this.length % 512)) % 512;
    if (tail > 0) this.push(new Uint8Array(tail));
    const out = new Uint8Array(this.length);
    let off = 0;
    for (const c of this.chunks) { out.set(c, off); off += c.length; }
    return out;
  }

  private parents(p: string): void {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) this.directory(parts.slice(0, i).join('/'));
  }

  private entry(p: string, mode: number, data: Uint8Array, nlink: number, rmaj: number, rmin: number, opts: EntryOptions): void {
    if (this.finished) throw new Error('cpio: archive already finished');
    if (p === '') throw new Error('cpio: empty path');
    if (this.paths.has(p)) throw new Error(`cpio: duplicate entry ${p}`);
    this.paths.set(p, mode & S_IFMT);
    this.raw(p, mode, data, nlink, rmaj, rmin, opts, this.nextIno++);
  }

  private raw(name: string, mode: number, data: Uint8Array, nlink: number, rmaj: number, rmin: number, opts: EntryOptions, ino: number): void {
    const nameBytes = encoder.encode(name);
    const namesize = nameBytes.length + 1;
    const fields = [ino, mode, opts.uid ?? 0, opts.gid ?? 0, nlink, opts.mtime ?? 0, data.length, 0, 0, rmaj, rmin, namesize, 0];
    const header = CPIO_MAGIC + fields.map((v) => {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`cpio: field out of range in ${name}`);
      return v.toString(16).padStart(8, '0');
    }).join('');
    this.push(encoder.encode(header));
    this.push(nameBytes);
    this.push(new Uint8Array(1 + pad4(HEADER_SIZE + namesize)));
    if (data.length > 0) {
      this.push(data);
      const p = pad4(data.length);
      if (p > 0) this.push(new Uint8Array(p));
    }
  }

  private push(c: Uint8Array): void {
    this.chunks.push(c);
    this.length += c.length;
  }
}
