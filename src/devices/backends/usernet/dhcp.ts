/** A DHCP server (RFC 2131, options from RFC 2132) leasing one address to the guest. */
import { readU16, readU32, writeU16, writeU32 } from './ipv4.js';

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;
const BOOTREQUEST = 1;
const BOOTREPLY = 2;
const MAGIC_COOKIE = 0x63825363;
/** RFC 2131 §2: the flags field's broadcast bit. */
const BROADCAST_FLAG = 0x8000;
/** RFC 1542 §3.1.1 / many clients: replies are at least the classic 300-byte BOOTP size. */
const MIN_REPLY = 300;

// RFC 2132 option codes.
const DHO_PAD = 0;
const DHO_SUBNET_MASK = 1;
const DHO_ROUTERS = 3;
const DHO_DOMAIN_NAME_SERVERS = 6;
const DHO_REQUESTED_ADDRESS = 50;
const DHO_LEASE_TIME = 51;
const DHO_MESSAGE_TYPE = 53;
const DHO_SERVER_IDENTIFIER = 54;
const DHO_END = 255;

// RFC 2132 §9.6 message types.
export const DHCPDISCOVER = 1;
export const DHCPOFFER = 2;
export const DHCPREQUEST = 3;
export const DHCPDECLINE = 4;
export const DHCPACK = 5;
export const DHCPNAK = 6;
export const DHCPRELEASE = 7;
export const DHCPINFORM = 8;

export const LEASE_SECONDS = 86_400;

export interface DhcpConfig {
  readonly serverIp: number;
  readonly leaseIp: number;
  readonly mask: number;
  readonly router: number;
  readonly dns: number;
}

export interface DhcpReply {
  readonly payload: Uint8Array;
  /** Where the reply goes: limited broadcast, or unicast to `ip` at the client's hardware address. */
  readonly broadcast: boolean;
  readonly ip: number;
  readonly mac: Uint8Array;
  /** Set when the client now holds the lease. */
  readonly leased: boolean;
}

interface Options { type?: number; requested?: number; serverId?: number }

function parseOptions(b: Uint8Array, start: number): Options | undefined {
  const o: Options = {};
  let i = start;
  while (i < b.length) {
    const code = b[i]!;
    if (code === DHO_END) break;
    if (code === DHO_PAD) { i++; continue; }
    if (i + 1 >= b.length) return undefined;
    const len = b[i + 1]!;
    const v = i + 2;
    if (v + len > b.length) return undefined;
    if (code === DHO_MESSAGE_TYPE && len === 1) o.type = b[v]!;
    else if (code === DHO_REQUESTED_ADDRESS && len === 4) o.requested = readU32(b, v);
    else if (code === DHO_SERVER_IDENTIFIER && len === 4) o.serverId = readU32(b, v);
    i = v + len;
  }
  return o;
}

/** The server's answer to one client message, or undefined when it needs none (or is malformed). */
export function handleDhcp(cfg: DhcpConfig, msg: Uint8Array): DhcpReply | undefined {
  if (msg.length < 240 || msg[0] !== BOOTREQUEST || msg[1] !== 1 || msg[2] !== 6) return undefined;
  if (readU32(msg, 236) !== MAGIC_COOKIE) return undefined;
  const opts = parseOptions(msg, 240);
  if (!opts || opts.type === undefined) return undefined;
  const ciaddr = readU32(msg, 12);
  const flags = readU16(msg, 10);
  let type: number;
  let yiaddr = cfg.leaseIp;
  switch (opts.type) {
    case DHCPDISCOVER:
      type = DHCPOFFER;
      break;
    case DHCPREQUEST: {
      // §4.3.2: SELECTING names a server; a request meant for another server is not ours to answer.
      if (opts.serverId !== undefined && opts.serverId !== cfg.serverIp) return undefined;
      const wanted = opts.requested ?? ciaddr;
      type = wanted === cfg.leaseIp ? DHCPACK : DHCPNAK;
      break;
    }
    case DHCPINFORM:
      type = DHCPACK;
      yiaddr = 0;
      break;
    case DHCPDECLINE:
    case DHCPRELEASE:
      return undefined;
    default:
      return undefined;
  }
  const out = new Uint8Array(MIN_REPLY + 64);
  out[0] = BOOTREPLY;
  out[1] = 1;
  out[2] = 6;
  out.set(msg.subarray(4, 8), 4); // xid
  writeU16(out, 10, flags);
  if (type !== DHCPNAK) {
    writeU32(out, 12, opts.type === DHCPINFORM ? ciaddr : 0);
    writeU32(out, 16, yiaddr);
    writeU32(out, 20, cfg.serverIp);
  }
  out.set(msg.subarray(28, 44), 28); // chaddr
  writeU32(out, 236, MAGIC_COOKIE);
  let i = 240;
  const put = (code: number, bytes: readonly number[]): void => {
    out[i++] = code;
    out[i++] = bytes.length;
    for (const b of bytes) out[i++] = b;
  };
  const ip = (v: number): number[] => [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
  put(DHO_MESSAGE_TYPE, [type]);
  put(DHO_SERVER_IDENTIFIER, ip(cfg.serverIp));
  if (type !== DHCPNAK) {
    if (opts.type !== DHCPINFORM) put(DHO_LEASE_TIME, ip(LEASE_SECONDS));
    put(DHO_SUBNET_MASK, ip(cfg.mask));
    put(DHO_ROUTERS, ip(cfg.router));
    put(DHO_DOMAIN_NAME_SERVERS, ip(cfg.dns));
  }
  out[i++] = DHO_END;
  const payload = out.subarray(0, Math.max(i, MIN_REPLY));
  const mac = msg.slice(28, 34);
  // §4.1: NAKs are broadcast; a client with an address gets unicast there;
  // otherwise the broadcast bit decides.
  if (type === DHCPNAK) return { payload, broadcast: true, ip: 0xffffffff, mac, leased: false };
  if (ciaddr !== 0) return { payload, broadcast: false, ip: ciaddr, mac, leased: type === DHCPACK && yiaddr !== 0 };
  const broadcast = (flags & BROADCAST_FLAG) !== 0;
  return { payload, broadcast, ip: broadcast ? 0xffffffff : yiaddr, mac, leased: type === DHCPACK };
}
