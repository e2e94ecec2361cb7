/**
 * The guest agent: a small static riscv64 program that listens on vsock and
 * runs commands for `disco exec`. Built from guest/agent/ with the riscv64
 * cross compiler and cached.
 */

export interface AgentBuildOptions {
  readonly cacheDir?: string;
  readonly log?: (line: string) => void;
}

/** The agent binary (static riscv64 ELF), built on first use and cached. */
export async function buildAgent(opts: AgentBuildOptions = {}): Promise<Uint8Array> {
  void opts;
  throw new Error('the guest agent is not built yet');
}
