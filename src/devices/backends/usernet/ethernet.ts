/** Ethernet II framing (IEEE 802.3 with EtherType) and MAC addresses. */

export const ETH_HLEN = 14;
export const ETH_ALEN = 6;
/** EtherTypes, linux/if_ether.h. */
export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;

export const BROADCAST_MAC: Uint8Array = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

/** Parses "52:54:00:12:34:56" (or with '-'); undefined if malformed. */
export function parseMac(text: string): Uint8Array | undefined {
  const parts = text.split(/[:-]/);
  if (parts.length !== ETH_ALEN) return undefined;
  const mac = new Uint8Array(ETH_ALEN);
  for (let i = 0; i < ETH_ALEN; i++) {
    const p = parts[i]!;
    if (!/^[0-9a-fA-F]{1,2}$/.test(p)) return undefined;
    mac[i] = parseInt(p, 16);
  }
  return mac;
}

export function formatMac(mac: Uint8Array): string {
  return Array.from(mac.subarray(0, ETH_ALEN), (b) => b.toString(16).padStart(2, '0')).join(':');
}

export function sameMac(a: Uint8Array, aOff: number, b: Uint8Array): boolean {
  for (let i = 0; i < ETH_ALEN; i++) if (a[aOff + i] !== b[i]) return false;
  return true;
}

/** A frame with its Ethernet header written and room for `payloadLength` bytes after it. */
export function newFrame(dst: Uint8Array, src: Uint8Array, type: number, payloadLength: number): Uint8Array {
  const frame = new Uint8Array(ETH_HLEN + payloadLength);
  frame.set(dst.subarray(0, ETH_ALEN), 0);
  frame.set(src.subarray(0, ETH_ALEN), ETH_ALEN);
  frame[12] = type >>> 8;
  frame[13] = type & 0xff;
  return frame;
}
