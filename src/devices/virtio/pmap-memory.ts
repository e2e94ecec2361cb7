/**
 * `GuestMemory` over a VM's pmap: devices reach the RAM regions only (never the
 * boot ROM, never MMIO), page by page through the machine memory. Two-byte
 * accesses at even addresses use Atomics on the shared machine memory, so ring
 * indices are published and observed whole and in order with the harts'
 * accesses on other threads.
 */
import { PAGE_SIZE, PM_CODE, PM_FRAME_SHIFT, PM_WRITE, type Pmap } from '../../memory/pmap.js';
import type { GuestMemory } from './memory.js';

export function pmapGuestMemory(pmap: Pmap): GuestMemory {
  const u8 = pmap.mem.u8;
  const u16 = new Uint16Array(pmap.mem.buffer);

  const isRam = (gpa: number, length: number): boolean => {
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(length) || gpa < 0 || length <= 0) return false;
    const r = pmap.regionOf(gpa);
    return r !== undefined && r.kind === 'ram' && gpa + length <= r.base + r.pages * PAGE_SIZE;
  };

  /** Machine address of gpa (backing the page on first touch), or -1; `write` also demands a writable page. */
  const machine = (gpa: number, write: boolean): number => {
    const i = pmap.indexOf(gpa);
    if (i < 0) return -1;
    const e = pmap.entry(i);
    if (e === 0) return -1;
    // A page held read-only (copy-on-write sharing, later) must be broken by the pmap first.
    if (write && !(e & PM_WRITE)) return -1;
    // DMA into a page holding translated code drops the translations first.
    if (write && (e & PM_CODE)) pmap.codeWritten(i);
    return (e >>> PM_FRAME_SHIFT) * PAGE_SIZE + (gpa % PAGE_SIZE);
  };

  return {
    isRam,
    read(gpa, length) {
      if (!isRam(gpa, length)) return null;
      if (length === 2 && gpa % 2 === 0) {
        const ma = machine(gpa, false);
        if (ma < 0) return null;
        const v = Atomics.load(u16, ma >>> 1);
        return Uint8Array.of(v & 0xff, v >>> 8);
      }
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const ma = machine(gpa + done, false);
        if (ma < 0) return null;
        const n = Math.min(length - done, PAGE_SIZE - ((gpa + done) % PAGE_SIZE));
        out.set(u8.subarray(ma, ma + n), done);
        done += n;
      }
      return out;
    },
    write(gpa, data) {
      if (!isRam(gpa, data.length)) return false;
      if (data.length === 2 && gpa % 2 === 0) {
        const ma = machine(gpa, true);
        if (ma < 0) return false;
        Atomics.store(u16, ma >>> 1, data[0]! | (data[1]! << 8));
        return true;
      }
      let done = 0;
      while (done < data.length) {
        const ma = machine(gpa + done, true);
        if (ma < 0) return false;
        const n = Math.min(data.length - done, PAGE_SIZE - ((gpa + done) % PAGE_SIZE));
        u8.set(data.subarray(done, done + n), ma);
        done += n;
      }
      return true;
    },
  };
}
