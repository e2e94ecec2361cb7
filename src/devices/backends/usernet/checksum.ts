/** The Internet checksum (RFC 1071): one's-complement sum of 16-bit big-endian words. */

/** Unfolded sum of bytes [start, end); an odd trailing byte is the high half of a word. */
export function sum16(data: Uint8Array, start: number, end: number, initial = 0): number {
  let sum = initial;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (i < end) sum += data[i]! << 8;
  return sum;
}

export function fold(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** The checksum field value for bytes [start, end) (with the field itself zero). */
export function checksum(data: Uint8Array, start: number, end: number, initial = 0): number {
  return ~fold(sum16(data, start, end, initial)) & 0xffff;
}

/** The TCP/UDP pseudo-header of RFC 793 §3.1 / RFC 768, unfolded. */
export function pseudoSum(src: number, dst: number, proto: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + length;
}

/** True when bytes [start, end) including their checksum field sum to all ones. */
export function verify(data: Uint8Array, start: number, end: number, initial = 0): boolean {
  return fold(sum16(data, start, end, initial)) === 0xffff;
}
