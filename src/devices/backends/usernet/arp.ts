/** ARP (RFC 826) for IPv4 over Ethernet: we answer for the virtual hosts and learn the guest. */
import { ETH_HLEN, ETH_P_ARP, ETH_P_IP, newFrame } from './ethernet.js';
import { readU16, readU32, writeU16, writeU32 } from './ipv4.js';

const ARPHRD_ETHER = 1;
export const ARPOP_REQUEST = 1;
export const ARPOP_REPLY = 2;
const ARP_LEN = 28;

export interface ArpPacket {
  readonly op: number;
  readonly senderMac: Uint8Array;
  readonly senderIp: number;
  readonly targetMac: Uint8Array;
  readonly targetIp: number;
}

export function parseArp(bytes: Uint8Array): ArpPacket | undefined {
  if (bytes.length < ARP_LEN) return undefined;
  if (readU16(bytes, 0) !== ARPHRD_ETHER || readU16(bytes, 2) !== ETH_P_IP || bytes[4] !== 6 || bytes[5] !== 4) {
    return undefined;
  }
  return {
    op: readU16(bytes, 6),
    senderMac: bytes.slice(8, 14),
    senderIp: readU32(bytes, 14),
    targetMac: bytes.slice(18, 24),
    targetIp: readU32(bytes, 24),
  };
}

export function arpFrame(op: number, dstMac: Uint8Array, senderMac: Uint8Array, senderIp: number,
  targetMac: Uint8Array, targetIp: number): Uint8Array {
  const frame = newFrame(dstMac, senderMac, ETH_P_ARP, ARP_LEN);
  const o = ETH_HLEN;
  writeU16(frame, o, ARPHRD_ETHER);
  writeU16(frame, o + 2, ETH_P_IP);
  frame[o + 4] = 6;
  frame[o + 5] = 4;
  writeU16(frame, o + 6, op);
  frame.set(senderMac.subarray(0, 6), o + 8);
  writeU32(frame, o + 14, senderIp);
  frame.set(targetMac.subarray(0, 6), o + 18);
  writeU32(frame, o + 24, targetIp);
  return frame;
}
