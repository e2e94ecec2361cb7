/** A machine that cannot be built or run as configured; the message is one line for the user. */
export class MachineError extends Error {
  override readonly name = 'MachineError';
}
