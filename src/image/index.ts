/** Guest images: fetching Debian riscv64 packages into a cache, and building the initramfs. */
export { ImageError } from './errors.js';
export { defaultCacheDir } from './cache.js';
export { fetchImages, type FetchOptions, type GuestImages, type FetchedPackage } from './fetch.js';
export {
  buildInitramfs, defaultInitramfs, BASE_MODULES, DEFAULT_INIT, INIT_READY, INITRAMFS_CMDLINE, VIRTIO_MODULES,
  type DefaultInitramfsOptions, type ExtraFile, type InitramfsModule, type InitramfsOptions,
} from './initramfs.js';
export { CpioWriter } from './cpio.js';
