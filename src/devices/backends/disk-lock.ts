/** Lock files that keep two VMs from opening one writable image. */
import { closeSync, linkSync, openSync, readFileSync, unlinkSync, writeSync, constants as fsConstants } from 'node:fs';
import { MachineError } from '../../machine/errors.js';

// ------------------------------------------------------------------ lock files

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A held lock on an image: PATH.lock holding the owner's pid. */
export class ImageLock {
  private held = true;
  private constructor(readonly lockPath: string) {}

  /**
   * Takes PATH.lock for this process, or throws a MachineError naming the
   * live process that holds it. The pid is written to a private file first
   * and linked into place (link fails if the name exists), so the lock never
   * exists without its pid; a lock whose process is gone is stale and removed.
   */
  static acquire(path: string): ImageLock {
    const lockPath = `${path}.lock`;
    const tmp = `${lockPath}.${process.pid}.${Math.random().toString(36).slice(2)}`;
    try {
      const fd = openSync(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o644);
      try { writeSync(fd, `${process.pid}\n`); } finally { closeSync(fd); }
    } catch (e) {
      throw new MachineError(`cannot create the lock file for ${path}: ${(e as Error).message}`);
    }
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          linkSync(tmp, lockPath);
          return new ImageLock(lockPath);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new MachineError(`cannot lock ${path}: ${(e as Error).message}`);
        }
        let text = '';
        try { text = readFileSync(lockPath, 'utf8'); } catch { continue; /* removed meanwhile: try again */ }
        const pid = /^\d+\s*$/.test(text) ? Number.parseInt(text, 10) : NaN;
        if (Number.isSafeInteger(pid) && pid > 0 && pidAlive(pid)) throw new MachineError(`${path} is in use by process ${pid}`);
        // Stale (its process is gone) or not a lock we understand: take it over.
        try { unlinkSync(lockPath); } catch { /* someone else took it over; try again */ }
      }
      throw new MachineError(`cannot lock ${path}: its lock file ${lockPath} keeps changing`);
    } finally {
      try { unlinkSync(tmp); } catch { /* already gone */ }
    }
  }

  /**
   * For read-only opens: throws a MachineError if a live process holds PATH's
   * lock (it is writing the image, so what a reader sees would change under it).
   */
  static assertNotWritten(path: string, what: string): void {
    let text: string;
    try { text = readFileSync(`${path}.lock`, 'utf8'); } catch { return; }
    const pid = /^\d+\s*$/.test(text) ? Number.parseInt(text, 10) : NaN;
    if (Number.isSafeInteger(pid) && pid > 0 && pidAlive(pid)) throw new MachineError(`${what} ${path} is being written by process ${pid}`);
  }

  /** Removes the lock file if it is still ours. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    try {
      if (readFileSync(this.lockPath, 'utf8').trim() === String(process.pid)) unlinkSync(this.lockPath);
    } catch { /* gone already */ }
  }
}

