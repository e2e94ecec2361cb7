/**
 * Reading Debian binary packages in Node, so hosts without dpkg work too.
 *
 * A .deb is an `ar` archive (deb(5)): `debian-binary`, `control.tar.*` and
 * `data.tar.*`, where the data member is plain, gzip, xz or zstd compressed
 * tar. The tar reader understands ustar, GNU long names/links and pax
 * extended headers, which is what dpkg-deb writes.
 *
 * Decompressors (npm, no native build step, no download outside npm):
 * - xz: `@napi-rs/lzma` (Rust lzma-rs behind N-API, prebuilt binaries
 *   shipped as per-platform npm packages, with a wasm32-wasi fallback);
 *   Debian's data.tar.xz and .ko.xz kernel modules are xz.
 * - zstd: `fzstd` (pure JavaScript, by the author of fflate); Debian does not
 *   use zstd yet but Ubuntu and newer dpkg do.
 * - gzip: node:zlib.
 * Anything else (bzip2, lzma-alone) falls back to `dpkg-deb --fsys-tarfile`
 * when dpkg-deb is installed.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { xz } from '@napi-rs/lzma';
import { decompress as zstdDecompress } from 'fzstd';
import { describe, ImageError } from './errors.js';

// ---------------------------------------------------------------- ar

export interface ArMember {
  readonly name: string;
  readonly data: Uint8Array;
}

const AR_MAGIC = '!<arch>\n';
const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8');

/** The members of an `ar` archive (common/System V format as dpkg writes it). */
export function parseAr(buf: Uint8Array): ArMember[] {
  if (buf.length < 8 || latin1.decode(buf.subarray(0, 8)) !== AR_MAGIC) throw new ImageError('not an ar archive (bad magic)');
  const members: ArMember[] = [];
  let off = 8;
  while (off < buf.length) {
    if (buf[off] === 0x0a) { off++; continue; } // stray padding
    if (off + 60 > buf.length) throw new ImageError('truncated ar archive (member header)');
    const hdr = latin1.decode(buf.subarray(off, off + 60));
    if (hdr.slice(58, 60) !== '`\n') throw new ImageError(`corrupt ar archive (bad member header at ${off})`);
    const name = hdr.slice(0, 16).trimEnd().replace(/\/$/, '');
    const sizeText = hdr.slice(48, 58).trim();
    if (!/^\d+$/.test(sizeText)) throw new ImageError(`corrupt ar archive (bad size of ${name})`);
    const size = Number(sizeText);
    const start = off + 60;
    if (start + size > buf.length) throw new ImageError(`truncated ar archive (member ${name})`);
    members.push({ name, data: buf.subarray(start, start + size) });
    off = start + size + (size & 1);
  }
  return members;
}

// ---------------------------------------------------------------- tar

export type TarEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';

export interface TarEntry {
  /** Normalized relative path: no leading `./` or `/`, no trailing `/`. */
  readonly path: string;
  readonly type: TarEntryType;
  readonly mode: number;
  /** Numeric owner and group as archived (e.g. root:shadow for setgid tools). */
  readonly uid: number;
  readonly gid: number;
  /** File contents (a view into the archive); empty for non-files. */
  readonly data: Uint8Array;
  /** Target of a symlink or hard link (hard links: a normalized archive path). */
  readonly linkname: string;
}

/** Parses a numeric tar field: octal text, or GNU base-256 when the top bit is set. */
function tarNumber(field: Uint8Array, what: string): number {
  if (field.length > 0 && (field[0]! & 0x80) !== 0) {
    let v = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) v = v * 256 + field[i]!;
    if (!Number.isSafeInteger(v)) throw new ImageError(`corrupt tar archive (${what} out of range)`);
    return v;
  }
  const text = latin1.decode(field).replace(/\0.*$/s, '').trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new ImageError(`corrupt tar archive (bad ${what} field "${text}")`);
  return parseInt(text, 8);
}

function cString(field: Uint8Array): string {
  const nul = field.indexOf(0);
  return utf8.decode(nul < 0 ? field : field.subarray(0, nul));
}

/** Normalizes an archive path; refuses absolute escapes and `..` components. */
export function safeRelativePath(p: string): string {
  let s = p.replace(/^(\.\/|\/)+/, '');
  s = posix.normalize(s === '' ? '.' : s).replace(/\/+$/, '');
  if (s === '.') return '';
  if (s === '..' || s.startsWith('../') || s.startsWith('/')) throw new ImageError(`unsafe path in archive: ${p}`);
  return s;
}

function parsePax(data: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  let off = 0;
  while (off < data.length) {
    let sp = off;
    while (sp < data.length && data[sp] !== 0x20) sp++;
    const len = Number(latin1.decode(data.subarray(off, sp)));
    if (!Number.isInteger(len) || len <= 0 || off + len > data.length) throw new ImageError('corrupt tar archive (bad pax record)');
    const rec = utf8.decode(data.subarray(sp + 1, off + len - 1)); // drop trailing \n
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    off += len;
  }
  return out;
}

/** The entries of a tar archive, in order. Entry data are views into `buf`. */
export function* tarEntries(buf: Uint8Array): Generator<TarEntry> {
  let off = 0;
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax: Map<string, string> | undefined;
  while (off + 512 <= buf.length) {
    const h = buf.subarray(off, off + 512);
    if (h.every((b) => b === 0)) return; // end-of-archive block
    const stored = tarNumber(h.subarray(148, 156), 'checksum');
    let sum = 0;
    let signedSum = 0; // some old tars summed signed bytes
    for (let i = 0; i < 512; i++) {
      const b = i >= 148 && i < 156 ? 0x20 : h[i]!;
      sum += b;
      signedSum += b < 128 ? b : b - 256;
    }
    if (sum !== stored && signedSum !== stored) throw new ImageError(`corrupt tar archive (header checksum at offset ${off})`);
    const typeflag = String.fromCharCode(h[156]!);
    let size = tarNumber(h.subarray(124, 136), 'size');
    if (pax?.has('size')) size = Number(pax.get('size'));
    const dataStart = off + 512;
    if (dataStart + size > buf.length) throw new ImageError('truncated tar archive');
    const data = buf.subarray(dataStart, dataStart + size);
    off = dataStart + Math.ceil(size / 512) * 512;

    if (typeflag === 'L') { longName = cString(data); continue; }
    if (typeflag === 'K') { longLink = cString(data); continue; }
    if (typeflag === 'x') { pax = parsePax(data); continue; }
    if (typeflag === 'g') continue; // global pax header: nothing we use

    const magic = latin1.decode(h.subarray(257, 263));
    let name = cString(h.subarray(0, 100));
    if (magic === 'ustar\0') { // POSIX ustar: prefix field (GNU uses those bytes otherwise)
      const prefix = cString(h.subarray(345, 500));
      if (prefix !== '') name = `${prefix}/${name}`;
    }
    name = pax?.get('path') ?? longName ?? name;
    let linkname = pax?.get('linkpath') ?? longLink ?? cString(h.subarray(157, 257));
    const paxId = (key: string, off: number): number => {
      const v = pax?.has(key) ? Number(pax.get(key)) : tarNumber(h.subarray(off, off + 8), key);
      if (!Number.isSafeInteger(v) || v < 0) throw new ImageError(`corrupt tar archive (bad ${key} of ${name})`);
      return v;
    };
    const uid = paxId('uid', 108);
    const gid = paxId('gid', 116);
    longName = longLink = pax = undefined;

    const mode = tarNumber(h.subarray(100, 108), 'mode') & 0o7777;
    let type: TarEntryType;
    switch (typeflag) {
      case '0': case '\0': case '7': type = 'file'; break;
      case '5': type = 'dir'; break;
      case '2': type = 'symlink'; break;
      case '1': type = 'hardlink'; linkname = safeRelativePath(linkname); break;
      default: type = 'other';
    }
    yield { path: safeRelativePath(name), type, mode, uid, gid, data: type === 'file' ? data : new Uint8Array(0), linkname };
  }
}

// ---------------------------------------------------------------- decompression

/** Decompresses by the member/file name's suffix (.xz, .zst, .gz, or none). */
export async function decompressBySuffix(name: string, data: Uint8Array): Promise<Uint8Array> {
  try {
    if (name.endsWith('.xz')) return new Uint8Array(await xz.decompress(data));
    if (name.endsWith('.zst')) return zstdDecompress(data);
    if (name.endsWith('.gz')) return new Uint8Array(gunzipSync(data));
  } catch (err) {
    throw new ImageError(`cannot decompress ${name}: ${describe(err)}`);
  }
  if (/\.(bz2|lzma)$/.test(name)) throw new ImageError(`unsupported compression of ${name}`);
  return data;
}

// ---------------------------------------------------------------- .deb

function hasDpkgDeb(): boolean {
  try {
    execFileSync('dpkg-deb', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The uncompressed data.tar of a .deb (Node first; dpkg-deb for exotic compressions). */
export async function debDataTar(debPath: string, deb?: Uint8Array): Promise<Uint8Array> {
  let buf: Uint8Array;
  try {
    buf = deb ?? readFileSync(debPath);
  } catch (err) {
    throw new ImageError(`cannot read ${debPath}: ${describe(err)}`);
  }
  const members = parseAr(buf);
  const first = members[0];
  if (first?.name !== 'debian-binary' || !latin1.decode(first.data).startsWith('2.')) {
    throw new ImageError(`${debPath} is not a Debian binary package (format 2.x)`);
  }
  const data = members.find((m) => m.name.startsWith('data.tar'));
  if (!data) throw new ImageError(`${debPath} has no data.tar member`);
  if (/\.(bz2|lzma)$/.test(data.name) && hasDpkgDeb()) {
    return new Uint8Array(execFileSync('dpkg-deb', ['--fsys-tarfile', debPath], { maxBuffer: 4 << 30 }));
  }
  return decompressBySuffix(data.name, data.data);
}

export interface ExtractResult {
  /** Relative paths of the regular files written. */
  readonly files: string[];
}

/**
 * Extracts the entries of a .deb's data.tar for which `select(path)` is true
 * into `dest` (created), refusing paths that escape it. Symlinks are
 * recreated, hard links copied, device nodes and FIFOs skipped.
 */
export async function extractDeb(debPath: string, dest: string, select: (path: string) => boolean, deb?: Uint8Array): Promise<ExtractResult> {
  const tar = await debDataTar(debPath, deb);
  const files: string[] = [];
  try {
    mkdirSync(dest, { recursive: true });
    for (const e of tarEntries(tar)) {
      if (e.path === '' || !select(e.path)) continue;
      const out = join(dest, e.path);
      switch (e.type) {
        case 'dir':
          mkdirSync(out, { recursive: true });
          break;
        case 'file':
          mkdirSync(dirname(out), { recursive: true });
          rmSync(out, { force: true });
          writeFileSync(out, e.data, { mode: e.mode & 0o777 });
          files.push(e.path);
          break;
        case 'symlink':
          mkdirSync(dirname(out), { recursive: true });
          rmSync(out, { force: true });
          symlinkSync(e.linkname, out);
          break;
        case 'hardlink':
          if (!select(e.linkname)) break;
          mkdirSync(dirname(out), { recursive: true });
          rmSync(out, { force: true });
          copyFileSync(join(dest, e.linkname), out);
          files.push(e.path);
          break;
        case 'other':
          break;
      }
    }
  } catch (err) {
    if (err instanceof ImageError) throw err;
    throw new ImageError(`cannot extract ${debPath}: ${describe(err)}`);
  }
  return { files };
}
