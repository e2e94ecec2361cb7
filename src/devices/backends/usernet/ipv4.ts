/** IPv4 (RFC 791) headers: parsing what the guest sends, building what it receives. */
import { checksum, verify } from './checksum.js';
import { ETH_HLEN, ETH_P_IP, newFrame } from './ethernet.js';

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
const IP_MF = 0x2000;
const IP_OFFMASK = 0x1fff;

/** 10.0.2.0/24, QEMU's user network. */
export const NET_PREFIX = 0x0a000200;
export const NET_MASK = 0xffffff00;
export const GATEWAY_IP = 0x0a000202;
export const DNS_IP = 0x0a000203;
export const DEFAULT_GUEST_IP = 0x0a00020f;
export const LOOPBACK_IP = 0x7f000001;

export function ipFromString(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const b = Number(m[i]);
    if (b > 255) return undefined;
    v = v * 256 + b;
  }
  return v >>> 0;
}

export function ipToString(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 0xff}.${(ip >>> 8) & 0xff}.${ip & 0xff}`;
}

export function readU32(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}
export function readU16(b: Uint8Array, off: number): number {
  return (b[off]! << 8) | b[off + 1]!;
}
export function writeU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 24; b[off + 1] = (v >>> 16) & 0xff; b[off + 2] = (v >>> 8) & 0xff; b[off + 3] = v & 0xff;
}
export function writeU16(b: Uint8Array, off: number, v: number): void {
  b[off] = (v >>> 8) & 0xff; b[off + 1] = v & 0xff;
}

export interface Ipv4Packet {
  readonly src: number;
  readonly dst: number;
  readonly proto: number;
  /** The transport payload (a view into the frame). */
  readonly payload: Uint8Array;
}

/**
 * The IPv4 packet in `bytes`, or undefined for anything we do not handle:
 * bad version/length/checksum, fragments (we do not reassemble) and headers
 * with options (none of our peers needs them).
 */
export function parseIpv4(bytes: Uint8Array): Ipv4Packet | undefined {
  if (bytes.length < 20) return undefined;
  const vihl = bytes[0]!;
  if (vihl >>> 4 !== 4 || (vihl & 0xf) !== 5) return undefined;
  const total = readU16(bytes, 2);
  if (total < 20 || total > bytes.length) return undefined;
  const frag = readU16(bytes, 6);
  if ((frag & IP_MF) !== 0 || (frag & IP_OFFMASK) !== 0) return undefined;
  if (!verify(bytes, 0, 20)) return undefined;
  return { src: readU32(bytes, 12), dst: readU32(bytes, 16), proto: bytes[9]!, payload: bytes.subarray(20, total) };
}

let nextId = 1;

/** An Ethernet frame carrying an IPv4 packet around `l4` (whose checksum is already set). */
export function ipv4Frame(dstMac: Uint8Array, srcMac: Uint8Array, src: number, dst: number, proto: number,
  l4: Uint8Array): Uint8Array {
  const frame = newFrame(dstMac, srcMac, ETH_P_IP, 20 + l4.length);
  const o = ETH_HLEN;
  frame[o] = 0x45;
  writeU16(frame, o + 2, 20 + l4.length);
  writeU16(frame, o + 4, nextId);
  nextId = (nextId + 1) & 0xffff;
  writeU16(frame, o + 6, 0x4000); // DF: our segments never exceed the link MTU
  frame[o + 8] = 64;
  frame[o + 9] = proto;
  writeU32(frame, o + 12, src);
  writeU32(frame, o + 16, dst);
  writeU16(frame, o + 10, checksum(frame, o, o + 20));
  frame.set(l4, o + 20);
  return frame;
}

export function inNet(ip: number): boolean {
  return ((ip & NET_MASK) >>> 0) === NET_PREFIX;
}
