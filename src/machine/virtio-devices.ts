/**
 * Turns a slot's `VirtioDeviceSpec` into the device model and its host back end.
 * Back ends that cannot be opened (a missing disk image, a TAP the host refuses)
 * fail here with a MachineError, before the guest runs.
 */
import { VirtioBalloon } from '../devices/virtio/balloon.js';
import { VirtioConsole } from '../devices/virtio/console.js';
import type { VirtioDevice } from '../devices/virtio/device.js';
import { VirtioPowerButton } from '../devices/virtio/input.js';
import { VirtioRng } from '../devices/virtio/rng.js';
import type { Pmap } from '../memory/pmap.js';
import { MachineError } from './errors.js';
import type { VirtioDeviceSpec } from './virtio-spec.js';

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
}

export function createVirtioDevice(spec: VirtioDeviceSpec, env: VirtioEnv): VirtioDevice {
  void env;
  switch (spec.kind) {
    case 'power-button': return new VirtioPowerButton();
    case 'console': return new VirtioConsole({ ports: spec.ports, output: env.consoleOutput, log: env.log });
    case 'rng': return new VirtioRng();
    case 'balloon': return new VirtioBalloon(env.pmap, { deflateOnOom: spec.deflateOnOom, freePageReporting: spec.freePageReporting, statsIntervalS: spec.statsIntervalS });
    case 'block':
    case 'net':
    case 'vsock':
      throw new MachineError(`virtio ${spec.kind} is not available yet`);
    default: {
      const never: never = spec;
      throw new MachineError(`unknown virtio device ${JSON.stringify(never)}`);
    }
  }
}
