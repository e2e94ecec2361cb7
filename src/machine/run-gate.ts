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
}
