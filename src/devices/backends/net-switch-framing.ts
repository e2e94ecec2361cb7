/**
 * Ethernet frames over a byte stream (a Unix socket between switch members,
 * the pipes of the TAP relay): each record is a big-endian u32 length, then
 * that many bytes. The reader checks every length before it buffers anything,
 * so a peer cannot make it hold more than one record of at most `maxRecord`
 * bytes.
 */

/** A record as bytes on the stream: length prefix, then the payload. */
export function encodeRecord(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, 4);
  return out;
}

export class RecordReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed = false;

  /**
   * @param accept decides whether a record length is valid (it may depend on
   *   how many records came before); an invalid length ends the stream.
   * @param onRecord each complete record, in order.
   */
  constructor(
    private readonly accept: (length: number) => boolean,
    private readonly onRecord: (record: Uint8Array) => void,
  ) {}

  /**
   * Feeds bytes from the stream. False once the stream carried an invalid
   * length: the caller closes it (nothing more is parsed).
   */
  push(data: Buffer): boolean {
    if (this.failed) return false;
    this.chunks.push(data);
    this.buffered += data.length;
    for (;;) {
      if (this.buffered < 4) return true;
      const head = this.peek(4);
      const len = head.readUInt32BE(0);
      if (!this.accept(len)) {
        this.failed = true;
        this.chunks = [];
        this.buffered = 0;
        return false;
      }
      if (this.buffered < 4 + len) return true;
      const rec = this.take(4 + len).subarray(4);
      this.onRecord(rec);
      if (this.failed) return false;
    }
  }

  /** The first n buffered bytes (n <= buffered), without consuming them. */
  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  /** Consumes n bytes (n <= buffered) as one new buffer. */
  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length === n) {
      this.chunks.shift();
      out = first;
    } else if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      out = Buffer.from(first.subarray(0, n));
    } else {
      const all = Buffer.concat(this.chunks);
      out = Buffer.from(all.subarray(0, n));
      this.chunks = all.length > n ? [all.subarray(n)] : [];
    }
    this.buffered -= n;
    return out;
  }
}
