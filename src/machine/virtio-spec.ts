/**
 * What a VM's virtio-mmio slots carry, as plain data: the command line and
 * (later) the API produce it, the machine description places it in slots, and
 * `createVirtioDevice` turns it into a device with its back end. Being plain
 * JSON, it is also what a snapshot or a migration records of the VM's devices.
 */

/** A forwarded host port: connections to host `hostAddr:hostPort` reach guest `guestPort` (QEMU's hostfwd). */
export interface HostForward {
  readonly protocol: 'tcp' | 'udp';
  /** Host address to listen on; '' means 127.0.0.1. */
  readonly hostAddr: string;
  /** 0: let the host pick a free port (the chosen one is reported). */
  readonly hostPort: number;
  /** Guest address; '' means the address DHCP gave the guest. */
  readonly guestAddr: string;
  readonly guestPort: number;
}

export type NetBackendSpec =
  /** An in-host learning Ethernet switch shared by every VM that names it. */
  | { readonly kind: 'switch'; readonly name: string }
  /** A host TAP device (needs CAP_NET_ADMIN or a TAP the user owns). */
  | { readonly kind: 'tap'; readonly ifname: string }
  /** User-mode networking: NAT through the host's sockets, DHCP and DNS for the guest. */
  | { readonly kind: 'user'; readonly hostfwd: readonly HostForward[] };

/** A named virtio-console port that the host exposes as a Unix socket. */
export interface ConsolePortSpec {
  /** The port name the guest sees (/sys/class/virtio-ports/vportNpM/name, /dev/virtio-ports/NAME). */
  readonly name: string;
  /** Host Unix socket path; the host listens there and relays one connection at a time. */
  readonly socket: string;
}

export type VirtioDeviceSpec =
  | {
    readonly kind: 'block';
    /** Raw image file. With an overlay it is the read-only base. */
    readonly path: string;
    readonly readonly: boolean;
    /** Copy-on-write overlay file above `path` (created if missing), or null. */
    readonly overlay: string | null;
    /** VIRTIO_BLK_F_ID serial (at most 20 bytes), or '' for none. */
    readonly serial: string;
  }
  | {
    readonly kind: 'net';
    /** 'xx:xx:xx:xx:xx:xx', lowercase. */
    readonly mac: string;
    readonly backend: NetBackendSpec;
  }
  | {
    readonly kind: 'console';
    /** Port 0 is the console (hvc0), wired to the VM's terminal; these are the extra named ports. */
    readonly ports: readonly ConsolePortSpec[];
  }
  | { readonly kind: 'rng' }
  | {
    readonly kind: 'balloon';
    /** VIRTIO_BALLOON_F_DEFLATE_ON_OOM. */
    readonly deflateOnOom: boolean;
    /** VIRTIO_BALLOON_F_FREE_PAGE_REPORTING. */
    readonly freePageReporting: boolean;
    /** Seconds between statistics requests (0: only on demand). */
    readonly statsIntervalS: number;
  }
  | {
    readonly kind: 'vsock';
    /** The guest's context id (3 or more). */
    readonly cid: number;
    /** Host Unix socket for host-initiated connections (Firecracker's uds_path); guest connections to host port P go to `${socket}_P`. */
    readonly socket: string;
  }
  /** The board's own graceful-shutdown button (virtio-input, KEY_POWER). */
  | { readonly kind: 'power-button' };

export type VirtioDeviceKind = VirtioDeviceSpec['kind'];
