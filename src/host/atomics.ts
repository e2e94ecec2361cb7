/** Atomics.waitAsync (Node 16+; not in TypeScript's lib for our target): waits without blocking the thread's event loop. */
type WaitAsyncResult = { readonly async: false; readonly value: 'not-equal' | 'timed-out' } | { readonly async: true; readonly value: Promise<'ok' | 'timed-out'> };
const waitAsyncFn = (Atomics as unknown as { waitAsync: (a: Int32Array, i: number, v: number, timeoutMs?: number) => WaitAsyncResult }).waitAsync;

/** Resolves when a[i] is notified or `timeoutMs` passes; at once if a[i] no longer holds `v`. */
export async function waitAsync(a: Int32Array, i: number, v: number, timeoutMs?: number): Promise<void> {
  const r = waitAsyncFn(a, i, v, timeoutMs);
  if (r.async) await r.value;
}
