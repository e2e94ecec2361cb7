/**
 * Where a Disco host keeps the sockets its VMs expose (vsock, console ports,
 * shared switches): `$DISCO_RUN_DIR`, else `$XDG_RUNTIME_DIR/disco`, else
 * `/tmp/disco-UID`. Created on first use, private to the user.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export function runDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env['DISCO_RUN_DIR'];
  const xdg = env['XDG_RUNTIME_DIR'];
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  const dir = explicit ? explicit : xdg ? join(xdg, 'disco') : `/tmp/disco-${uid}`;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** VM names: what a socket file name and an API path segment can carry. */
export const VM_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
