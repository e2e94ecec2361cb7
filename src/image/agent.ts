/**
 * The guest agent: a small static riscv64 program that listens on vsock and
 * runs commands for `disco exec`. Built from guest/agent/ with the riscv64
 * cross compiler and cached under the image cache, keyed by a hash of its
 * sources and the compiler flags (so an edited source is rebuilt).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultCacheDir, tempPathFor } from './cache.js';
import { describe, ImageError } from './errors.js';

/** The vsock port the agent listens on (guest side). */
export const AGENT_PORT = 1024;

export const AGENT_COMPILER = 'riscv64-linux-gnu-gcc';
const AGENT_FLAGS: readonly string[] = ['-static', '-Os', '-s', '-Wall', '-Wextra'];
/** guest/agent/ in the source tree (this file compiles to dist/src/image/). */
export const AGENT_SOURCE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'guest', 'agent');

export interface AgentBuildOptions {
  readonly cacheDir?: string;
  readonly log?: (line: string) => void;
}

function run(cmd: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 1 << 20 }, (err, _stdout, stderr) => {
      if (!err) { resolve(); return; }
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT') reject(new ImageError(`cannot build the guest agent: ${cmd} is not installed (run scripts/setup.sh)`));
      else reject(new ImageError(`cannot build the guest agent: ${describe(stderr.trim() || err)}`));
    });
  });
}

/** The agent binary (static riscv64 ELF), built on first use and cached. */
export async function buildAgent(opts: AgentBuildOptions = {}): Promise<Uint8Array> {
  let names: string[];
  try {
    names = (await readdir(AGENT_SOURCE_DIR)).filter((n) => n.endsWith('.c') || n.endsWith('.h')).sort();
  } catch (e) {
    throw new ImageError(`cannot read the guest agent sources in ${AGENT_SOURCE_DIR}: ${describe(e)}`);
  }
  const sources = names.filter((n) => n.endsWith('.c'));
  if (sources.length === 0) throw new ImageError(`no guest agent sources in ${AGENT_SOURCE_DIR}`);
  const h = createHash('sha256');
  h.update(`${AGENT_COMPILER}\0${AGENT_FLAGS.join(' ')}\0`);
  for (const n of names) {
    h.update(`${n}\0`);
    h.update(await readFile(join(AGENT_SOURCE_DIR, n)));
    h.update('\0');
  }
  const dir = join(opts.cacheDir ?? defaultCacheDir(), 'agent');
  const out = join(dir, `disco-agent-${h.digest('hex').slice(0, 16)}`);
  try {
    return new Uint8Array(await readFile(out));
  } catch { /* not built yet */ }
  opts.log?.('building the guest agent');
  await mkdir(dir, { recursive: true });
  const tmp = tempPathFor(out);
  try {
    await run(AGENT_COMPILER, [...AGENT_FLAGS, '-o', tmp, ...sources.map((n) => join(AGENT_SOURCE_DIR, n))]);
    await rename(tmp, out);
  } finally {
    await rm(tmp, { force: true });
  }
  return new Uint8Array(await readFile(out));
}
