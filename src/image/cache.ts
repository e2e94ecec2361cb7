/**
 * The image cache on disk: where it is, atomic writes, a lock between
 * concurrent `disco` processes, and SHA-256 of files.
 *
 * Layout (all under the cache directory):
 *   apt/            project-local apt tree (apt.conf, etc/, lists/, cache/, status)
 *   debs/           downloaded .deb files, verified against the signed index
 *   images/v1/<deb> the parts of each package Disco uses, extracted
 *   manifest.json   what was fetched: packages, versions, hashes, paths
 *   lock/           held while a process fetches or extracts
 *
 * Every file is written to a temporary name and renamed into place, and an
 * extracted package is a directory renamed into place when complete, so a
 * crash or a concurrent run never leaves a half-written file under its final
 * name.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, ImageError } from './errors.js';

/** `$DISCO_CACHE_DIR`, else `$XDG_CACHE_HOME/disco`, else `~/.cache/disco` (absolute). */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env['DISCO_CACHE_DIR']) return resolve(env['DISCO_CACHE_DIR']);
  if (env['XDG_CACHE_HOME']) return resolve(env['XDG_CACHE_HOME'], 'disco');
  return join(homedir(), '.cache', 'disco');
}

/** A unique temporary name beside `path` (same directory, so rename is atomic). */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${path.slice(dirname(path).length + 1)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Writes `data` to `path` through a temporary file and a rename. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new ImageError(`cannot write ${path}: ${describe(err)}`);
  }
}

/** SHA-256 (hex) of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Reads and parses a JSON file; undefined if it is missing or not JSON. */
export function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface LockOptions {
  /** Give up after this long (default 30 minutes: a slow first download). */
  readonly timeoutMs?: number;
  readonly log?: (line: string) => void;
}

/**
 * Runs `fn` holding the lock directory `lockDir` (mkdir is atomic). A lock
 * left by a dead process on this host is broken. Waiting is announced once.
 */
export async function withLock<T>(lockDir: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30 * 60_000);
  const me = `${process.pid}@${hostname()}`;
  let announced = false;
  mkdirSync(dirname(lockDir), { recursive: true });
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, 'owner'), me);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new ImageError(`cannot lock ${lockDir}: ${describe(err)}`);
    }
    let owner = '';
    try { owner = readFileSync(join(lockDir, 'owner'), 'utf8'); } catch { /* being created or removed */ }
    const m = /^(\d+)@(.*)$/.exec(owner);
    if (m && m[2] === hostname() && !processAlive(Number(m[1]))) {
      // Stale: move it aside atomically, so two breakers cannot both succeed on the same lock.
      const aside = `${lockDir}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
      try { renameSync(lockDir, aside); rmSync(aside, { recursive: true, force: true }); } catch { /* someone else broke it */ }
      continue;
    }
    if (Date.now() > deadline) throw new ImageError(`timed out waiting for the image cache lock ${lockDir} (held by ${owner || 'unknown'})`);
    if (!announced) {
      opts.log?.(`waiting for another disco process using the image cache (${owner || 'unknown'})`);
      announced = true;
    }
    await sleep(250);
  }
  try {
    return await fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}
