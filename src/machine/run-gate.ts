/**
 * What lets a VM's harts run: the hypervisor's vCPU scheduler hands out host
 * threads (run tokens); `disco run` has none and its harts always may run.
 */
export interface RunGate {
  /**
   * Called before a hart runs: null when it may run at once (the VM holds a
   * run token and its time slice lasts), else a promise that settles when it
   * may (the token came back, the VM was resumed) or the VM is being stopped.
   */
  enter(): Promise<void> | null;
  /** Every started hart waits for an interrupt: the VM gives its host thread away before it sleeps. */
  idle(): void;
  /** The machine stops: the gate gives back what it holds and ends any wait. */
  close?(): void;
}

/** What a gate tells its hart's machine. */
export interface GateHooks {
  /** The hart was runnable but waited `ms` for a host thread (its steal time, SBI STA). */
  steal(ms: number): void;
}

/**
 * How a hart on its own thread gets its gate: a module (URL) whose export
 * `createRunGate` builds the gate from `data` on that thread. The machine
 * layer knows the gate only through this, so a hypervisor's scheduler stays above it.
 */
export interface RunGateSpec {
  readonly module: string;
  readonly data: unknown;
}

export type RunGateFactory = (data: unknown, hooks: GateHooks) => RunGate;
