/**
 * apt-get with a project-local configuration: Disco's own sources.list,
 * lists, cache and (empty) dpkg status under the image cache, so the host's
 * apt setup is neither read for sources nor written. apt is used only to
 * fetch and check the signed package index (InRelease, verified with the
 * Debian archive keyring) and to resolve package names to URLs, sizes and
 * SHA-256 sums; Disco downloads the .debs itself (download.ts).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, ImageError } from './errors.js';

export interface AptSource {
  readonly uri: string;
  readonly suite: string;
  readonly component: string;
  readonly arch: string;
  readonly keyring: string;
}

/** Debian 13 (trixie) riscv64, main. */
export const DEBIAN_TRIXIE_RISCV64: AptSource = {
  uri: 'http://deb.debian.org/debian',
  suite: 'trixie',
  component: 'main',
  arch: 'riscv64',
  keyring: '/usr/share/keyrings/debian-archive-keyring.gpg',
};

export function sourcesListLine(s: AptSource): string {
  return `deb [arch=${s.arch} signed-by=${s.keyring}] ${s.uri} ${s.suite} ${s.component}`;
}

/** A .deb as the signed index describes it (from `apt-get --print-uris`). */
export interface DebSpec {
  readonly url: string;
  /** The file name apt would give it (URL-escaped epoch colon: `%3a`). */
  readonly filename: string;
  readonly name: string;
  readonly version: string;
  readonly arch: string;
  readonly size: number;
  /** Lower-case hex SHA-256 of the .deb. */
  readonly sha256: string;
}

/** Creates (idempotently) the apt tree under `root`; returns the apt.conf path. */
export function writeAptTree(root: string, source: AptSource = DEBIAN_TRIXIE_RISCV64): string {
  const d = (...p: string[]): string => join(root, ...p);
  for (const dir of ['etc/apt.conf.d', 'etc/preferences.d', 'etc/trusted.gpg.d', 'lists/partial', 'cache/archives/partial', 'state']) {
    mkdirSync(d(dir), { recursive: true });
  }
  writeFileSync(d('etc/sources.list'), `${sourcesListLine(source)}\n`);
  if (!existsSync(d('status'))) writeFileSync(d('status'), '');
  if (!existsSync(d('etc/apt.conf'))) writeFileSync(d('etc/apt.conf'), ''); // stands in for /etc/apt/apt.conf
  const q = (s: string): string => JSON.stringify(s); // apt.conf strings are double-quoted
  const lines = [
    `Dir::State ${q(d('state'))};`,
    `Dir::State::Lists ${q(d('lists'))};`,
    `Dir::State::status ${q(d('status'))};`,
    `Dir::Cache ${q(d('cache'))};`,
    `Dir::Etc ${q(d('etc'))};`, // so every other Dir::Etc file (auth.conf, …) resolves here too
    `Dir::Etc::main ${q(d('etc/apt.conf'))};`,
    `Dir::Etc::sourcelist ${q(d('etc/sources.list'))};`,
    'Dir::Etc::sourceparts "-";',
    `Dir::Etc::parts ${q(d('etc/apt.conf.d'))};`,
    `Dir::Etc::preferences ${q(d('etc/preferences'))};`,
    `Dir::Etc::preferencesparts ${q(d('etc/preferences.d'))};`,
    `Dir::Etc::trusted ${q(d('etc/trusted.gpg'))};`,
    `Dir::Etc::trustedparts ${q(d('etc/trusted.gpg.d'))};`,
    `APT::Architecture ${q(source.arch)};`,
    `APT::Architectures ${q(source.arch)};`,
    'Acquire::Languages "none";', // no Translation-* files: Disco never shows descriptions
    // Keep the index compressed (about 10 MB instead of 54) and build apt's
    // binary caches in memory (they would take 80 MB for two queries).
    'Acquire::GzipIndexes "true";',
    'Acquire::CompressionTypes::Order { "gz"; };',
    'Dir::Cache::pkgcache "";',
    'Dir::Cache::srcpkgcache "";',
  ];
  // As root, apt would drop to the _apt user for downloads and warn when that
  // user cannot reach a cache under /root; these are index files checked by
  // apt's own signature verification either way.
  if (process.getuid?.() === 0) lines.push('APT::Sandbox::User "root";');
  const conf = d('apt.conf');
  writeFileSync(conf, `${lines.join('\n')}\n`);
  return conf;
}

/** Throws a one-line ImageError unless apt-get and the source's keyring are present. */
export async function checkAptAvailable(source: AptSource = DEBIAN_TRIXIE_RISCV64): Promise<void> {
  try {
    await run('apt-get', ['--version'], {});
  } catch {
    throw new ImageError('apt-get is required to fetch the Debian guest images (install apt, or run on a Debian/Ubuntu host)');
  }
  if (!existsSync(source.keyring)) {
    throw new ImageError(`missing ${source.keyring}: install the package debian-archive-keyring (apt-get install debian-archive-keyring)`);
  }
}

interface RunResult { stdout: string; stderr: string }

function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    execFile(cmd, args, { env: { ...process.env, ...env, LC_ALL: 'C' }, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stdout, stderr }));
      else resolvePromise({ stdout, stderr });
    });
  });
}

/** The most telling line of apt's output (its first `E:` line, else its first `W:` line), without the prefix. */
export function aptErrorLine(stderr: string, fallback: string): string {
  const lines = stderr.split('\n').map((l) => l.replace(/\s+/g, ' ').trim()).filter((l) => l !== '');
  const line = lines.find((l) => l.startsWith('E:')) ?? lines.find((l) => l.startsWith('W:')) ?? lines[0] ?? fallback;
  return line.replace(/^[EW]: /, '');
}

async function apt(conf: string, cmd: string, args: readonly string[], what: string): Promise<string> {
  try {
    return (await run(cmd, args, { APT_CONFIG: conf })).stdout;
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new ImageError(`${what}: ${aptErrorLine(stderr, describe(err))}`);
  }
}

/** `apt-get update` into the local tree; any failed index download is an error. */
export async function aptUpdate(conf: string, source: AptSource = DEBIAN_TRIXIE_RISCV64): Promise<void> {
  await apt(conf, 'apt-get', ['-q', 'update', '--error-on=any'], `cannot update the package index from ${source.uri} (${source.suite} ${source.arch})`);
}

/**
 * The first dependency of `meta` whose name matches `pattern`, from
 * `apt-cache depends` output. Virtual packages (`<pkg>`) are skipped; the
 * first of a group of alternatives (`|Depends:`) is the preferred one.
 */
export function parseDepends(text: string, pattern: RegExp): string | undefined {
  for (const line of text.split('\n')) {
    const m = /^\s*\|?Depends:\s+(\S+)/.exec(line);
    if (m && !m[1]!.startsWith('<') && pattern.test(m[1]!)) return m[1]!;
  }
  return undefined;
}

/** Resolves a metapackage (e.g. linux-image-riscv64) to the real package it depends on. */
export async function resolveMetapackage(conf: string, meta: string, pattern: RegExp): Promise<string> {
  const out = await apt(conf, 'apt-cache', ['depends', meta], `cannot resolve ${meta}`);
  const dep = parseDepends(out, pattern);
  if (!dep) throw new ImageError(`cannot resolve ${meta}: no dependency matching ${pattern}`);
  return dep;
}

/**
 * Parses `apt-get --print-uris download` output: one line per package,
 * `'URL' FILENAME SIZE ALGO:HEX`. Package name, version and architecture come
 * from the file name (`name_version_arch.deb`, `%3a` for the epoch colon).
 */
export function parsePrintUris(text: string): DebSpec[] {
  const out: DebSpec[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line.startsWith("'")) continue;
    const m = /^'([^']+)'\s+(\S+)\s+(\d+)\s+(\S+)$/.exec(line);
    if (!m) throw new ImageError(`cannot parse apt-get --print-uris line: ${line}`);
    const [, url, filename, size, hashField] = m as unknown as [string, string, string, string, string];
    const h = /^SHA256:([0-9a-fA-F]{64})$/.exec(hashField);
    if (!h) throw new ImageError(`no SHA256 sum for ${filename} in the package index (got ${hashField.split(':')[0]})`);
    const f = /^([^_]+)_([^_]+)_([^_]+)\.deb$/.exec(filename);
    if (!f) throw new ImageError(`unexpected .deb file name: ${filename}`);
    out.push({
      url,
      filename,
      name: f[1]!,
      version: decodeURIComponent(f[2]!),
      arch: f[3]!,
      size: Number(size),
      sha256: h[1]!.toLowerCase(),
    });
  }
  return out;
}

/** URLs, sizes and SHA-256 sums of the named packages (candidate versions). */
export async function printUris(conf: string, packages: readonly string[]): Promise<DebSpec[]> {
  const out = await apt(conf, 'apt-get', ['-q', '--print-uris', 'download', ...packages], `cannot locate ${packages.join(', ')} in the package index`);
  const specs = parsePrintUris(out);
  for (const p of packages) {
    if (!specs.some((s) => s.name === p)) throw new ImageError(`cannot locate ${p} in the package index`);
  }
  return specs;
}

/**
 * The names of the packages `apt-get install` would bring into an empty
 * system for `packages` (Depends and Pre-Depends, no Recommends), in apt's
 * unpack order. apt prints MD5 sums there, so callers pass the names to
 * printUris for the SHA-256 sums.
 */
export async function resolveInstall(conf: string, packages: readonly string[]): Promise<string[]> {
  const out = await apt(conf, 'apt-get', ['-q', '-y', '--print-uris', '-o', 'APT::Install-Recommends=false', 'install', ...packages],
    `cannot resolve the dependencies of ${packages.join(', ')}`);
  const names = parseInstallUris(out);
  for (const p of packages) {
    if (!names.includes(p)) throw new ImageError(`cannot locate ${p} in the package index`);
  }
  return names;
}

/** Package names from `apt-get --print-uris install` lines (`'URL' name_version_arch.deb SIZE SUM`). */
export function parseInstallUris(text: string): string[] {
  const names: string[] = [];
  for (const raw of text.split('\n')) {
    const m = /^'[^']+'\s+([^_\s]+)_[^_\s]+_[^_\s]+\.deb\s/.exec(raw.trim());
    if (m && !names.includes(m[1]!)) names.push(m[1]!);
  }
  return names;
}
