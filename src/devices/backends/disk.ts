/**
 * A disk back end as the virtio-blk device sees it: a byte array of fixed
 * size (a multiple of 512) with asynchronous access. Raw image files and
 * copy-on-write overlays implement it; `openDisk` turns a `--drive` spec into
 * one. Offsets and lengths are byte counts the device has already checked
 * (multiples of 512, inside `size`).
 */
import { OverlayDisk } from './disk-overlay.js';
import { RawDisk } from './disk-raw.js';

export { SECTOR_SIZE } from './disk-io.js';

export interface DiskBackend {
  /** Bytes; a multiple of SECTOR_SIZE. */
  readonly size: number;
  /** Writes, discards and write-zeroes are refused (the device offers VIRTIO_BLK_F_RO). */
  readonly readonly: boolean;
  /** The unit in which discard frees space (bytes, a multiple of SECTOR_SIZE); the device reports it as discard_sector_alignment. */
  readonly discardAlignment: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  write(offset: number, data: Uint8Array): Promise<void>;
  /** Everything written before the call is on the host's disk when the promise resolves. */
  flush(): Promise<void>;
  /** The range's contents become unspecified; the back end may free its space. */
  discard(offset: number, length: number): Promise<void>;
  /** The range reads as zeros; with `mayUnmap` the back end may free its space to do so. */
  writeZeroes(offset: number, length: number, mayUnmap: boolean): Promise<void>;
  /** Waits for nothing: the caller has let its own operations finish. Releases files and locks. */
  close(): Promise<void>;
}

export interface DiskSpec {
  readonly path: string;
  readonly readonly: boolean;
  /** Copy-on-write overlay above `path` (created if missing), or null for the raw image itself. */
  readonly overlay: string | null;
}

/** Opens the back end a drive names; bad paths and images throw a MachineError (one line). */
export function openDisk(spec: DiskSpec): DiskBackend {
  if (spec.overlay !== null) return OverlayDisk.open(spec.overlay, spec.path, { readonly: spec.readonly });
  return RawDisk.open(spec.path, { readonly: spec.readonly });
}
