/**
 * Turns a slot's `VirtioDeviceSpec` into the device model and its host back end.
 * Back ends that cannot be opened (a missing disk image, a TAP the host refuses)
 * fail here with a MachineError, before the guest runs.
 */
import { createBlockDevice } from '../devices/virtio/block.js';
import type { VirtioDevice } from '../devices/virtio/device.js';
import { VirtioPowerButton } from '../devices/virtio/input.js';
import { VirtioNet, parseMac } from '../devices/virtio/net.js';
import type { NetBackend } from '../devices/backends/net.js';
import { openSwitchPort } from '../devices/backends/net-switch.js';
import { openTap } from '../devices/backends/net-tap.js';
import { UserNet } from '../devices/backends/usernet/index.js';
import { createVsock } from '../devices/virtio/vsock-factory.js';
import { VirtioBalloon } from '../devices/virtio/balloon.js';
import { VirtioConsole } from '../devices/virtio/console.js';
import { VirtioRng } from '../devices/virtio/rng.js';
import type { Pmap } from '../memory/pmap.js';
import { MachineError } from './errors.js';
import type { NetBackendSpec, VirtioDeviceSpec } from './virtio-spec.js';

/** What a device's back end may use of the VM that holds it. */
export interface VirtioEnv {
  /** The VM's name (MAC addresses, socket paths and log lines derive from it). */
  readonly vmName: string;
  /** The VM's physical map (the balloon gives pages back through it). */
  readonly pmap: Pmap;
  /** Bytes for the VM's terminal (virtio-console port 0). */
  readonly consoleOutput: (bytes: Uint8Array) => void;
  /** A diagnostic line for the host's log (not the guest's console). */
  readonly log: (line: string) => void;
  /**
   * Host set-up that finishes asynchronously (listening sockets): the machine
   * waits for it before the guest runs, and a rejection (a one-line
   * MachineError) ends the run before the first instruction.
   */
  readonly starting: (setup: Promise<unknown>) => void;
}

export function createVirtioDevice(spec: VirtioDeviceSpec, env: VirtioEnv): VirtioDevice {
  switch (spec.kind) {
    case 'power-button': return new VirtioPowerButton();
    case 'net': return new VirtioNet(`net ${spec.mac}`, parseMac(spec.mac), netBackend(spec.backend, parseMac(spec.mac), env));
    case 'block': return createBlockDevice(spec, env.log);
    case 'vsock': return createVsock(spec, env);
    case 'console': return new VirtioConsole({ ports: spec.ports, output: env.consoleOutput, log: env.log });
    case 'rng': return new VirtioRng();
    case 'balloon': return new VirtioBalloon(env.pmap, { deflateOnOom: spec.deflateOnOom, freePageReporting: spec.freePageReporting, statsIntervalS: spec.statsIntervalS });
    default: {
      const never: never = spec;
      throw new MachineError(`unknown virtio device ${JSON.stringify(never)}`);
    }
  }
}

function netBackend(spec: NetBackendSpec, mac: Uint8Array, env: VirtioEnv): NetBackend {
  switch (spec.kind) {
    case 'switch': return openSwitchPort(spec.name, mac, { log: env.log });
    case 'tap': return openTap(spec.ifname, { log: env.log });
    case 'user': {
      const u = new UserNet({ hostfwd: spec.hostfwd, guestMac: [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':'), log: env.log });
      env.starting(u.start());
      return u;
    }
    default: {
      const never: never = spec;
      throw new MachineError(`unknown network back end ${JSON.stringify(never)}`);
    }
  }
}
