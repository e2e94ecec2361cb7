/**
 * The one error type of src/image: every failure to fetch, verify, unpack or
 * build a guest image is an ImageError with a one-line message that names
 * what could not be done and why (the CLI prints it as `disco: <message>`).
 */
export class ImageError extends Error {
  override readonly name = 'ImageError';
}

/** The message of an unknown thrown value, on one line. */
export function describe(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.replace(/\s*\n\s*/g, '; ').trim();
}
