/**
 * Other guests than Linux: Debian's U-Boot for QEMU's riscv64 virt board
 * (package u-boot-qemu, M-mode `uboot.elf`), fetched through the same
 * project-local apt configuration as the default guest, verified against the
 * signed index and cached. U-Boot brings its own virtio-mmio, virtio-blk and
 * virtio-net drivers and expects its disk in slot 0, as on QEMU.
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { aptUpdate, checkAptAvailable, DEBIAN_TRIXIE_RISCV64, printUris, writeAptTree } from './apt.js';
import { defaultCacheDir, sha256, withLock, writeFileAtomic } from './cache.js';
import { debDataTar, tarEntries } from './deb.js';
import { downloadVerified, httpDownload } from './download.js';
import { ImageError } from './errors.js';

const UBOOT_PACKAGE = 'u-boot-qemu';
const UBOOT_PATH = 'usr/lib/u-boot/qemu-riscv64/uboot.elf';

export interface FirmwareOptions {
  readonly cacheDir?: string;
  readonly log?: (line: string) => void;
}

/** The path of U-Boot's M-mode ELF for the riscv64 virt board, fetched on first use. */
export async function fetchUboot(opts: FirmwareOptions = {}): Promise<string> {
  const cacheDir = resolve(opts.cacheDir || defaultCacheDir());
  const log = opts.log ?? ((): void => {});
  const dir = join(cacheDir, 'firmware');
  const out = join(dir, 'u-boot-qemu-riscv64.elf');
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  return withLock(join(dir, 'lock'), async () => {
    if (existsSync(out)) return out;
    await checkAptAvailable();
    const aptRoot = join(cacheDir, 'apt');
    const conf = writeAptTree(aptRoot);
    const lists = join(aptRoot, 'lists');
    if (!existsSync(lists) || !readdirSync(lists).some((n) => n.endsWith('InRelease'))) {
      log(`updating the package index (Debian ${DEBIAN_TRIXIE_RISCV64.suite} ${DEBIAN_TRIXIE_RISCV64.arch})`);
      await aptUpdate(conf);
    }
    const [spec] = await printUris(conf, [UBOOT_PACKAGE]);
    if (!spec) throw new ImageError(`the package index has no ${UBOOT_PACKAGE}`);
    const deb = join(cacheDir, 'debs', spec.filename);
    mkdirSync(join(cacheDir, 'debs'), { recursive: true });
    log(`downloading ${spec.name} ${spec.version}`);
    await downloadVerified({ url: spec.url, dest: deb, size: spec.size, sha256: spec.sha256, label: spec.filename }, httpDownload, () => {});
    for (const e of tarEntries(await debDataTar(deb))) {
      if (e.path === UBOOT_PATH && e.type === 'file') {
        writeFileAtomic(out, e.data);
        log(`U-Boot ${spec.version}: ${out} (sha256 ${sha256(e.data).slice(0, 16)}…)`);
        return out;
      }
    }
    throw new ImageError(`${spec.filename} has no ${UBOOT_PATH}`);
  });
}
