/** Guest images: fetching Debian riscv64 packages into a cache, and building the initramfs. */
export { ImageError } from './errors.js';
export { defaultCacheDir } from './cache.js';
export { fetchImages, type FetchOptions, type GuestImages, type FetchedPackage } from './fetch.js';
export {
  agentIfAvailable, buildInitramfs, defaultInitramfs, BASE_MODULES, DEFAULT_INIT, INIT_READY, INITRAMFS_CMDLINE, NETWORK_SCRIPT,
  UDHCPC_SCRIPT, VIRTIO_MODULES, type DefaultInitramfsOptions, type ExtraFile, type InitramfsModule, type InitramfsOptions,
} from './initramfs.js';
export { CpioWriter } from './cpio.js';
export {
  buildRootfs, busyboxApplets, DEFAULT_ROOTFS_MIB, DEFAULT_ROOTFS_PACKAGES, MAX_ROOTFS_MIB, MIN_ROOTFS_MIB, ROOTFS_LABEL,
  type RootfsOptions, type RootfsResult,
} from './rootfs.js';
