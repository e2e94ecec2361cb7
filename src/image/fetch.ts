/**
 * `fetchImages()`: Disco's default guest — Debian 13 (trixie) riscv64 — from
 * the Debian archive into the image cache, verified, and unpacked as far as
 * Disco needs:
 *
 *   linux-image-riscv64  (metapackage) → linux-image-6.12.*-riscv64:
 *                        boot/vmlinux-<ver> (flat RISC-V Image, PE header),
 *                        boot/config-<ver>, usr/lib/modules/<ver>/ (all .ko.xz)
 *   busybox-static       usr/bin/busybox (static rv64gc)
 *   opensbi              usr/lib/riscv64-linux-gnu/opensbi/generic/fw_{jump,dynamic}.{elf,bin}
 *
 * The first run updates a project-local apt index (apt.ts), asks apt for each
 * .deb's URL, size and SHA-256 from the signed index, downloads them in Node
 * with a progress bar (download.ts), verifies them and extracts them in Node
 * (deb.ts). It then writes manifest.json. Later runs read the manifest,
 * re-hash the files Disco loads, and touch neither apt nor the network.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import {
  aptUpdate, checkAptAvailable, DEBIAN_TRIXIE_RISCV64, printUris, resolveMetapackage, sourcesListLine, writeAptTree,
  type AptSource, type DebSpec,
} from './apt.js';
import { defaultCacheDir, readJson, sha256File, tempPathFor, withLock, writeFileAtomic } from './cache.js';
import { extractDeb } from './deb.js';
import { downloadVerified, httpDownload, type Downloader } from './download.js';
import { describe, ImageError } from './errors.js';
import { makeProgress } from './progress.js';

export { ImageError } from './errors.js';

/** Absolute paths of everything Disco boots from. */
export interface GuestImages {
  readonly cacheDir: string;
  /** Flat RISC-V kernel Image (boot/vmlinux-<ver>); load at DRAM + 2 MiB. */
  readonly kernel: string;
  /** e.g. `6.12.107+deb13-riscv64` (the modules directory's name, `uname -r`). */
  readonly kernelVersion: string;
  /** The kernel's build configuration (boot/config-<ver>). */
  readonly kernelConfig: string;
  /** usr/lib/modules/<ver>: modules (.ko.xz), modules.order, modules.builtin*. */
  readonly modulesDir: string;
  /** Static riscv64 busybox. */
  readonly busybox: string;
  /** OpenSBI generic platform firmware, ELF and flat binary. */
  readonly opensbiFwJump: string;
  readonly opensbiFwJumpBin: string;
  readonly opensbiFwDynamic: string;
  readonly opensbiFwDynamicBin: string;
  /** The packages these came from. */
  readonly packages: readonly FetchedPackage[];
}

export interface FetchedPackage {
  readonly role: Role;
  readonly name: string;
  readonly version: string;
  readonly sha256: string;
  readonly url: string;
}

export type Role = 'kernel' | 'busybox' | 'opensbi';
const ROLES: readonly Role[] = ['kernel', 'busybox', 'opensbi'];

/** What stands between fetchImages and the outside world; tests replace it. */
export interface FetchBackend {
  /** The .deb of each role, from the signed index. */
  resolve(cacheDir: string, log: (line: string) => void): Promise<Record<Role, DebSpec>>;
  readonly download: Downloader;
}

export interface FetchOptions {
  /** Default (also for ''): defaultCacheDir() ($DISCO_CACHE_DIR, $XDG_CACHE_HOME/disco, ~/.cache/disco). */
  readonly cacheDir?: string;
  /** One line per step (no trailing newline). Default: silent. */
  readonly log?: (line: string) => void;
  /** Never use the network: the images must be in the cache already. */
  readonly offline?: boolean;
  /** Ask the archive for the current versions even when a complete set is cached. */
  readonly refresh?: boolean;
  /** Progress bar on stderr. Default: when stderr is a terminal. */
  readonly progress?: boolean;
  /** Replaces apt and HTTP (tests). */
  readonly backend?: FetchBackend;
}

// ---------------------------------------------------------------- manifest

const MANIFEST_FORMAT = 1;
const IMAGES_DIR = join('images', 'v1'); // bump when the extraction selection changes

interface FileRecord { readonly path: string; readonly size: number; readonly sha256: string }

type FileKey = 'kernel' | 'kernelConfig' | 'busybox' | 'opensbiFwJump' | 'opensbiFwJumpBin' | 'opensbiFwDynamic' | 'opensbiFwDynamicBin';
const FILE_KEYS: readonly FileKey[] = ['kernel', 'kernelConfig', 'busybox', 'opensbiFwJump', 'opensbiFwJumpBin', 'opensbiFwDynamic', 'opensbiFwDynamicBin'];

interface PackageRecord extends DebSpec {
  readonly role: Role;
  /** Extracted directory, relative to the cache directory. */
  readonly dir: string;
}

export interface Manifest {
  readonly format: number;
  readonly source: string;
  readonly fetched: string;
  readonly kernelVersion: string;
  /** Relative to the cache directory. */
  readonly modulesDir: string;
  readonly packages: readonly PackageRecord[];
  readonly files: Readonly<Record<FileKey, FileRecord>>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Structural check of a parsed manifest.json (anything else counts as no manifest). */
export function parseManifest(v: unknown): Manifest | undefined {
  if (!isRecord(v) || v['format'] !== MANIFEST_FORMAT) return undefined;
  if (typeof v['kernelVersion'] !== 'string' || typeof v['modulesDir'] !== 'string' || typeof v['source'] !== 'string') return undefined;
  const files = v['files'];
  if (!isRecord(files)) return undefined;
  for (const k of FILE_KEYS) {
    const f = files[k];
    if (!isRecord(f) || typeof f['path'] !== 'string' || typeof f['size'] !== 'number' || typeof f['sha256'] !== 'string') return undefined;
  }
  const pkgs = v['packages'];
  if (!Array.isArray(pkgs)) return undefined;
  for (const p of pkgs as unknown[]) {
    if (!isRecord(p) || typeof p['role'] !== 'string' || typeof p['name'] !== 'string' || typeof p['version'] !== 'string'
      || typeof p['sha256'] !== 'string' || typeof p['url'] !== 'string' || typeof p['dir'] !== 'string') return undefined;
  }
  return v as unknown as Manifest;
}

function imagesFromManifest(cacheDir: string, m: Manifest): GuestImages {
  const abs = (rel: string): string => resolve(cacheDir, rel);
  return {
    cacheDir,
    kernel: abs(m.files.kernel.path),
    kernelVersion: m.kernelVersion,
    kernelConfig: abs(m.files.kernelConfig.path),
    modulesDir: abs(m.modulesDir),
    busybox: abs(m.files.busybox.path),
    opensbiFwJump: abs(m.files.opensbiFwJump.path),
    opensbiFwJumpBin: abs(m.files.opensbiFwJumpBin.path),
    opensbiFwDynamic: abs(m.files.opensbiFwDynamic.path),
    opensbiFwDynamicBin: abs(m.files.opensbiFwDynamicBin.path),
    packages: m.packages.map((p) => ({ role: p.role, name: p.name, version: p.version, sha256: p.sha256, url: p.url })),
  };
}

/** Why a recorded file is not usable (missing, wrong size or SHA-256), or undefined if it is. */
async function checkFile(cacheDir: string, f: FileRecord): Promise<string | undefined> {
  const p = resolve(cacheDir, f.path);
  let size: number;
  try { size = statSync(p).size; } catch { return `${f.path} is missing`; }
  if (size !== f.size) return `${f.path} has the wrong size`;
  if (await sha256File(p) !== f.sha256) return `${f.path} has the wrong SHA256`;
  return undefined;
}

/**
 * The images the manifest describes if every file is there with its recorded
 * size and SHA-256 (and the modules directory exists); else why not, and the
 * extracted package directories that are damaged.
 */
async function verifyCached(cacheDir: string, m: Manifest): Promise<GuestImages | { reason: string; damaged: string[] }> {
  let reason: string | undefined;
  const damaged = new Set<string>();
  const dirOf = (rel: string): string | undefined => m.packages.find((p) => rel.startsWith(`${p.dir}/`))?.dir;
  for (const k of FILE_KEYS) {
    const why = await checkFile(cacheDir, m.files[k]);
    if (why === undefined) continue;
    reason ??= why;
    const d = dirOf(m.files[k].path);
    if (d) damaged.add(d);
  }
  if (!existsSync(join(resolve(cacheDir, m.modulesDir), 'modules.order'))) {
    reason ??= `${m.modulesDir}/modules.order is missing`;
    const d = dirOf(m.modulesDir);
    if (d) damaged.add(d);
  }
  return reason === undefined ? imagesFromManifest(cacheDir, m) : { reason, damaged: [...damaged] };
}

// ---------------------------------------------------------------- extraction

const KERNEL_META = 'linux-image-riscv64';
const KERNEL_REAL = /^linux-image-\d.*-riscv64$/;
const OPENSBI_DIR = 'usr/lib/riscv64-linux-gnu/opensbi/generic';

/** Which paths of each package are extracted. */
export function selectFor(role: Role): (path: string) => boolean {
  switch (role) {
    case 'kernel':
      return (p) => /^boot\/(vmlinux|vmlinuz|config)-/.test(p) || /^(usr\/)?lib\/modules(\/|$)/.test(p) || p === 'boot' || p === 'usr' || p === 'usr/lib';
    case 'busybox':
      return (p) => /^(usr\/)?s?bin\/busybox$/.test(p);
    case 'opensbi':
      return (p) => p === OPENSBI_DIR || p.startsWith(`${OPENSBI_DIR}/`);
  }
}

function debStem(spec: DebSpec): string {
  return spec.filename.replace(/\.deb$/, '');
}

/** Finds the files of each role inside the extracted directories. */
async function describeExtracted(cacheDir: string, dirs: Record<Role, string>): Promise<{ kernelVersion: string; modulesDir: string; files: Record<FileKey, FileRecord> }> {
  const kdir = join(cacheDir, dirs.kernel);
  let bootFiles: string[];
  try { bootFiles = readdirSync(join(kdir, 'boot')); } catch { bootFiles = []; }
  const vmlinux = bootFiles.find((f) => f.startsWith('vmlinux-')) ?? bootFiles.find((f) => f.startsWith('vmlinuz-'));
  if (!vmlinux) throw new ImageError(`the kernel package has no boot/vmlinux-*`);
  const kernelVersion = vmlinux.replace(/^vmlinu[xz]-/, '');
  const modulesDir = [join('usr', 'lib', 'modules', kernelVersion), join('lib', 'modules', kernelVersion)]
    .map((d) => join(dirs.kernel, d)).find((d) => existsSync(join(cacheDir, d)));
  if (!modulesDir) throw new ImageError(`the kernel package has no modules directory for ${kernelVersion}`);
  const busybox = ['usr/bin/busybox', 'bin/busybox', 'usr/sbin/busybox', 'sbin/busybox'].map((p) => join(dirs.busybox, p)).find((p) => existsSync(join(cacheDir, p)));
  if (!busybox) throw new ImageError('the busybox-static package has no busybox binary');
  const rel: Record<FileKey, string> = {
    kernel: join(dirs.kernel, 'boot', vmlinux),
    kernelConfig: join(dirs.kernel, 'boot', `config-${kernelVersion}`),
    busybox,
    opensbiFwJump: join(dirs.opensbi, OPENSBI_DIR, 'fw_jump.elf'),
    opensbiFwJumpBin: join(dirs.opensbi, OPENSBI_DIR, 'fw_jump.bin'),
    opensbiFwDynamic: join(dirs.opensbi, OPENSBI_DIR, 'fw_dynamic.elf'),
    opensbiFwDynamicBin: join(dirs.opensbi, OPENSBI_DIR, 'fw_dynamic.bin'),
  };
  const files = {} as Record<FileKey, FileRecord>;
  for (const k of FILE_KEYS) {
    const p = join(cacheDir, rel[k]);
    if (!existsSync(p)) throw new ImageError(`missing ${rel[k]} in the extracted packages`);
    files[k] = { path: rel[k], size: statSync(p).size, sha256: await sha256File(p) };
  }
  return { kernelVersion, modulesDir, files };
}

/**
 * Removes temporary files and directories (`.name.tmp-PID-RAND`) left by an
 * interrupted run. Called with the lock held: only the holder writes them.
 */
function removeLeftovers(cacheDir: string): void {
  for (const dir of [cacheDir, join(cacheDir, 'debs'), join(cacheDir, IMAGES_DIR)]) {
    let names: string[];
    try { names = readdirSync(dir); } catch { continue; }
    for (const n of names) {
      if (/^\..+\.tmp-\d+-[0-9a-f]+$/.test(n)) rmSync(join(dir, n), { recursive: true, force: true });
    }
  }
}

// ---------------------------------------------------------------- the real backend

/** apt (project-local) for the index, node:http for the files. */
export function aptBackend(source: AptSource = DEBIAN_TRIXIE_RISCV64): FetchBackend {
  return {
    async resolve(cacheDir, log) {
      await checkAptAvailable(source);
      const conf = writeAptTree(join(cacheDir, 'apt'), source);
      log(`updating the package index (Debian ${source.suite} ${source.arch})`);
      await aptUpdate(conf, source);
      const kernelPkg = await resolveMetapackage(conf, KERNEL_META, KERNEL_REAL);
      const specs = await printUris(conf, [kernelPkg, 'busybox-static', 'opensbi']);
      const by = (n: string): DebSpec => specs.find((s) => s.name === n)!;
      return { kernel: by(kernelPkg), busybox: by('busybox-static'), opensbi: by('opensbi') };
    },
    download: httpDownload,
  };
}

// ---------------------------------------------------------------- fetchImages

/**
 * Makes sure the default guest images are in the cache and returns their
 * paths. Idempotent; safe to run concurrently (a lock serializes fetchers,
 * and every file lands by rename). Throws ImageError.
 */
export async function fetchImages(opts: FetchOptions = {}): Promise<GuestImages> {
  const cacheDir = resolve(opts.cacheDir || defaultCacheDir()); // '' counts as unset
  const log = opts.log ?? ((): void => {});
  const manifestPath = join(cacheDir, 'manifest.json');

  const cached = async (): Promise<GuestImages | { reason: string; damaged: string[] }> => {
    const m = parseManifest(readJson(manifestPath));
    if (!m) return { reason: 'nothing is cached', damaged: [] };
    return verifyCached(cacheDir, m);
  };
  const isImages = (c: GuestImages | { reason: string }): c is GuestImages => !('reason' in c);

  if (!opts.refresh) {
    const c = await cached();
    if (isImages(c)) return c;
    if (opts.offline) throw new ImageError(`the guest images are not in the cache ${cacheDir} (${c.reason}): run \`disco image fetch\` first`);
  } else if (opts.offline) {
    throw new ImageError('cannot refresh the guest images offline');
  }

  try {
    mkdirSync(cacheDir, { recursive: true });
  } catch (err) {
    throw new ImageError(`cannot create the image cache ${cacheDir}: ${describe(err)}`);
  }
  return withLock(join(cacheDir, 'lock'), async () => {
    removeLeftovers(cacheDir);
    const c = await cached(); // another process may have finished while we waited
    if (isImages(c) && !opts.refresh) return c;
    if (!isImages(c)) { // a damaged extraction is redone (from the verified .deb, or downloaded again)
      for (const d of c.damaged) {
        if (!d.startsWith(`${IMAGES_DIR}/`) || d.split('/').includes('..')) continue; // only ever delete inside images/
        log(`the cached ${d} is damaged (${c.reason}); unpacking it again`);
        rmSync(join(cacheDir, d), { recursive: true, force: true });
      }
    }
    const backend = opts.backend ?? aptBackend();
    const specs = await backend.resolve(cacheDir, log);

    // Download what is not extracted yet and not already in debs/.
    const debsDir = join(cacheDir, 'debs');
    const imagesDir = join(cacheDir, IMAGES_DIR);
    mkdirSync(debsDir, { recursive: true });
    mkdirSync(imagesDir, { recursive: true });
    const debPath = (s: DebSpec): string => join(debsDir, s.filename);
    const extracted = (s: DebSpec): boolean => existsSync(join(imagesDir, debStem(s)));
    const needed: DebSpec[] = [];
    for (const role of ROLES) {
      const s = specs[role];
      if (extracted(s)) continue;
      const p = debPath(s);
      if (existsSync(p) && statSync(p).size === s.size && await sha256File(p) === s.sha256) continue;
      needed.push(s);
    }
    if (needed.length > 0) {
      const total = needed.reduce((a, s) => a + s.size, 0);
      const progress = makeProgress({ total, bar: opts.progress ?? process.stderr.isTTY === true, log });
      try {
        for (const s of needed) {
          progress.begin(s.name, s.size);
          await downloadVerified({ url: s.url, dest: debPath(s), size: s.size, sha256: s.sha256, label: s.filename }, backend.download, (n) => progress.advance(n));
          progress.end();
        }
      } finally {
        progress.stop();
      }
    }

    // Extract each package into a temporary directory, renamed into place when complete.
    const dirs = {} as Record<Role, string>;
    for (const role of ROLES) {
      const s = specs[role];
      const final = join(imagesDir, debStem(s));
      dirs[role] = relative(cacheDir, final);
      if (existsSync(final)) continue;
      log(`unpacking ${s.name} ${s.version}`);
      const tmp = tempPathFor(final);
      try {
        await extractDeb(debPath(s), tmp, selectFor(role));
        renameSync(tmp, final);
      } catch (err) {
        rmSync(tmp, { recursive: true, force: true });
        if (existsSync(final)) continue; // a concurrent run got there first
        throw err instanceof ImageError ? err : new ImageError(`cannot unpack ${s.filename}: ${describe(err)}`);
      }
    }

    const info = await describeExtracted(cacheDir, dirs);
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      source: sourcesListLine(DEBIAN_TRIXIE_RISCV64),
      fetched: new Date().toISOString(),
      kernelVersion: info.kernelVersion,
      modulesDir: info.modulesDir,
      packages: ROLES.map((role) => ({ role, ...specs[role], dir: dirs[role] })),
      files: info.files,
    };
    writeFileAtomic(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
    log(`guest images ready in ${cacheDir} (kernel ${info.kernelVersion})`);
    return imagesFromManifest(cacheDir, manifest);
  }, { log });
}
