/**
 * A network back end as the virtio-net device sees it: Ethernet frames in and
 * out (no virtio header). Switch ports, TAP devices and user-mode networking
 * implement it. A back end never blocks: frames it cannot take are dropped, as
 * a wire would.
 */
export interface NetBackend {
  /** A frame the guest transmitted (destination MAC first; 14..65535 bytes). */
  send(frame: Uint8Array): void;
  /**
   * Where frames for the guest go (set once, by the device). The device drops
   * frames when the guest has no receive buffers (`receive` returns false).
   */
  attach(receive: (frame: Uint8Array) => boolean): void;
  /** The guest's receive queue has room again (after a `receive` returned false). */
  resume?(): void;
  /** Releases host resources (sockets, file descriptors, timers). */
  close(): Promise<void>;
}
