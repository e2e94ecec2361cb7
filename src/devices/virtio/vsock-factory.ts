/**
 * Builds a VM's virtio-vsock from its spec: checks the socket path before the
 * guest runs (a one-line MachineError), then listens on it.
 */
import { existsSync, lstatSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { MachineError } from '../../machine/errors.js';
import type { VirtioEnv } from '../../machine/virtio-devices.js';
import type { VirtioDeviceSpec } from '../../machine/virtio-spec.js';
import { VirtioVsock } from './vsock.js';

/** sun_path holds 108 bytes with its NUL; guest ports add up to 11 more (`_4294967295`). */
const MAX_SOCKET_PATH = 107 - 11;

export function createVsock(spec: Extract<VirtioDeviceSpec, { kind: 'vsock' }>, env: VirtioEnv): VirtioVsock {
  if (!Number.isInteger(spec.cid) || spec.cid < 3 || spec.cid > 0xffffffff) throw new MachineError(`vsock: guest CID ${spec.cid} is not in 3..4294967295`);
  if (Buffer.byteLength(spec.socket) > MAX_SOCKET_PATH) throw new MachineError(`vsock: socket path ${spec.socket} is longer than ${MAX_SOCKET_PATH} bytes`);
  const dir = dirname(spec.socket);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new MachineError(`vsock: socket directory ${dir} does not exist`);
  if (existsSync(spec.socket) && !lstatSync(spec.socket).isSocket()) throw new MachineError(`vsock: ${spec.socket} exists and is not a socket`);
  const dev = new VirtioVsock({ cid: spec.cid, socket: spec.socket, log: env.log });
  env.starting(dev.listen());
  return dev;
}
