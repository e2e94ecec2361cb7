/**
 * Kernel modules for the initramfs: finding them by name in a modules
 * directory, their dependencies, and their contents decompressed.
 *
 * Debian's linux-image package ships modules.order and modules.builtin but
 * not modules.dep (depmod writes it when the package is installed), so
 * dependencies are read where depmod reads them: the `depends=` entry of each
 * module's .modinfo ELF section. A modules.dep, when present, is used instead.
 *
 * Modules are stored compressed (.ko.xz on Debian); they are decompressed at
 * build time (deb.ts decompressBySuffix: @napi-rs/lzma for xz, fzstd for zstd,
 * node:zlib for gzip) so that busybox `insmod` needs no decompressor.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { decompressBySuffix } from './deb.js';
import { describe, ImageError } from './errors.js';

/** `virtio-rng`, `virtio_rng.ko.xz`, `kernel/.../virtio-rng.ko` → `virtio_rng`. */
export function moduleName(pathOrName: string): string {
  const base = pathOrName.slice(pathOrName.lastIndexOf('/') + 1);
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

export interface ModuleIndex {
  readonly dir: string;
  /** Module name → path relative to dir, as it is on disk (e.g. `kernel/…/x.ko.xz`). */
  readonly paths: ReadonlyMap<string, string>;
  /** Built-in module names (modules.builtin). */
  readonly builtin: ReadonlySet<string>;
  /** Dependencies from modules.dep, when the directory has one. */
  readonly deps?: ReadonlyMap<string, readonly string[]>;
}

const COMPRESSED_SUFFIXES = ['', '.xz', '.zst', '.gz'];

function readLines(path: string): string[] | undefined {
  try {
    return readFileSync(path, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  } catch {
    return undefined;
  }
}

function walk(dir: string, root: string, out: string[]): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, root, out);
    else if (/\.ko(\.(xz|zst|gz))?$/.test(e.name)) out.push(relative(root, p));
  }
}

/** Indexes a modules directory (usr/lib/modules/<version>). */
export function readModuleIndex(dir: string): ModuleIndex {
  if (!existsSync(dir)) throw new ImageError(`no modules directory ${dir}`);
  const paths = new Map<string, string>();
  const add = (rel: string): void => {
    const name = moduleName(rel);
    if (!paths.has(name)) paths.set(name, rel);
  };
  let deps: Map<string, string[]> | undefined;
  const depLines = readLines(join(dir, 'modules.dep'));
  if (depLines) {
    deps = new Map();
    for (const line of depLines) {
      const colon = line.indexOf(':');
      if (colon < 0) continue;
      const rel = line.slice(0, colon);
      add(rel);
      deps.set(moduleName(rel), line.slice(colon + 1).trim().split(/\s+/).filter((s) => s !== '').map(moduleName));
    }
  } else {
    const order = readLines(join(dir, 'modules.order'));
    if (order) {
      for (const rel of order) {
        const found = COMPRESSED_SUFFIXES.map((s) => rel + s).find((p) => existsSync(join(dir, p)));
        if (found) add(found);
      }
    } else { // no modules.order: every module file under the directory
      const all: string[] = [];
      walk(dir, dir, all);
      all.sort();
      for (const rel of all) add(rel);
    }
  }
  const builtin = new Set((readLines(join(dir, 'modules.builtin')) ?? []).map(moduleName));
  return deps ? { dir, paths, builtin, deps } : { dir, paths, builtin };
}

/** The key=value strings of an ELF64 little-endian module's .modinfo section. */
export function readModinfo(ko: Uint8Array): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const dv = new DataView(ko.buffer, ko.byteOffset, ko.byteLength);
  if (ko.length < 64 || dv.getUint32(0, false) !== 0x7f454c46 || ko[4] !== 2 || ko[5] !== 1) {
    throw new ImageError('not a 64-bit little-endian ELF kernel module');
  }
  const shoff = Number(dv.getBigUint64(40, true));
  const shentsize = dv.getUint16(58, true);
  const shnum = dv.getUint16(60, true);
  const shstrndx = dv.getUint16(62, true);
  if (shentsize < 64 || shoff + shnum * shentsize > ko.length || shstrndx >= shnum) throw new ImageError('corrupt kernel module (section headers)');
  const sec = (i: number): { name: number; off: number; size: number } => {
    const b = shoff + i * shentsize;
    return { name: dv.getUint32(b, true), off: Number(dv.getBigUint64(b + 24, true)), size: Number(dv.getBigUint64(b + 32, true)) };
  };
  const strtab = sec(shstrndx);
  const secName = (off: number): string => {
    const start = strtab.off + off;
    let end = start;
    while (end < ko.length && ko[end] !== 0) end++;
    return new TextDecoder().decode(ko.subarray(start, end));
  };
  for (let i = 0; i < shnum; i++) {
    const s = sec(i);
    if (secName(s.name) !== '.modinfo') continue;
    if (s.off + s.size > ko.length) throw new ImageError('corrupt kernel module (.modinfo)');
    for (const entry of new TextDecoder().decode(ko.subarray(s.off, s.off + s.size)).split('\0')) {
      const eq = entry.indexOf('=');
      if (eq <= 0) continue;
      const k = entry.slice(0, eq);
      out.set(k, [...(out.get(k) ?? []), entry.slice(eq + 1)]);
    }
  }
  return out;
}

export interface ResolvedModule {
  readonly name: string;
  /** Relative to the modules directory, without the compression suffix (`kernel/…/x.ko`). */
  readonly path: string;
  /** Uncompressed module. */
  readonly data: Uint8Array;
}

/**
 * The requested modules and everything they depend on, decompressed, in an
 * order in which `insmod` can load them (dependencies first). Built-in
 * modules are skipped; an unknown module is an ImageError.
 */
export async function resolveModules(index: ModuleIndex, names: readonly string[]): Promise<ResolvedModule[]> {
  const out: ResolvedModule[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = async (raw: string, chain: readonly string[]): Promise<void> => {
    const name = moduleName(raw);
    if (index.builtin.has(name) || state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') throw new ImageError(`circular module dependency: ${[...chain, name].join(' -> ')}`);
    const rel = index.paths.get(name);
    if (!rel) {
      const from = chain.length > 0 ? ` (needed by ${chain[chain.length - 1]})` : '';
      throw new ImageError(`unknown kernel module ${raw}${from}: not in ${index.dir}`);
    }
    state.set(name, 'visiting');
    let data: Uint8Array;
    try {
      data = await decompressBySuffix(rel, readFileSync(join(index.dir, rel)));
    } catch (err) {
      throw err instanceof ImageError ? err : new ImageError(`cannot read module ${rel}: ${describe(err)}`);
    }
    const deps = index.deps?.get(name)
      ?? (readModinfo(data).get('depends') ?? []).flatMap((d) => d.split(',')).filter((d) => d !== '');
    for (const d of deps) await visit(d, [...chain, name]);
    state.set(name, 'done');
    out.push({ name, path: rel.replace(/\.(xz|zst|gz)$/, ''), data });
  };
  for (const n of names) await visit(n, []);
  return out;
}
