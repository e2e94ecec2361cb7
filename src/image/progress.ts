/**
 * Download progress: a bar on stderr when it is a terminal (the npm package
 * `cli-progress`), plain one-line messages through `log` otherwise.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  /** A new file of `size` bytes starts. */
  begin(label: string, size: number): void;
  /** `n` more bytes arrived (negative: a failed attempt is rolled back). */
  advance(n: number): void;
  /** The current file is complete. */
  end(): void;
  /** Everything is done; removes the bar. */
  stop(): void;
}

const mb = (n: number): string => (n / 1e6).toFixed(1);

export interface ProgressOptions {
  /** Total bytes of all files to come. */
  readonly total: number;
  readonly bar: boolean;
  readonly log: (line: string) => void;
  readonly stream?: NodeJS.WritableStream;
}

export function makeProgress(opts: ProgressOptions): Progress {
  if (!opts.bar) {
    let current = '';
    let size = 0;
    return {
      begin(label, n) { current = label; size = n; opts.log(`downloading ${label} (${mb(n)} MB)`); },
      advance() { /* quiet */ },
      end() { opts.log(`downloaded ${current} (${mb(size)} MB)`); },
      stop() { /* nothing to clear */ },
    };
  }
  const bar = new cliProgress.SingleBar({
    format: '{file} [{bar}] {percentage}% {doneMB}/{totalMB} MB {speed} MB/s ETA {eta_formatted}',
    stream: opts.stream ?? process.stderr,
    // Leave the terminal's modes alone (no hidden cursor, no disabled line
    // wrapping) so an interrupted download cannot leave them changed;
    // cli-progress then cuts the line to the terminal's width.
    hideCursor: false,
    linewrap: true,
    clearOnComplete: true,
    barsize: 24,
    etaBuffer: 50,
    fps: 10,
  }, cliProgress.Presets.shades_classic);
  const started = Date.now();
  let done = 0;
  let file = '';
  const payload = (): Record<string, string> => {
    const secs = Math.max((Date.now() - started) / 1000, 0.001);
    return { file, doneMB: mb(done), totalMB: mb(opts.total), speed: (done / 1e6 / secs).toFixed(1) };
  };
  bar.start(Math.max(opts.total, 1), 0, payload());
  return {
    begin(label) { file = label.length > 28 ? `${label.slice(0, 27)}…` : label.padEnd(28); bar.update(done, payload()); },
    advance(n) { done += n; bar.update(done, payload()); },
    end() { bar.update(done, payload()); },
    stop() { bar.stop(); },
  };
}
