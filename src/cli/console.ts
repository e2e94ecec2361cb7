/**
 * The guest's console on the host terminal, with QEMU's escape convention:
 * Ctrl-A then x quits (hard power-off), s asks the guest to shut down,
 * h lists the keys, Ctrl-A again sends a literal Ctrl-A. With standard input
 * not a terminal, bytes pass straight through so scripts can drive a guest.
 */

export interface ConsoleTarget {
  input(bytes: Uint8Array): void;
  /** Hard power-off. */
  powerOff(): void;
  /** Graceful shutdown request (power button). */
  shutdown(): void;
}

const CTRL_A = 0x01;

export const CONSOLE_HELP = `
C-a h    print this help
C-a x    exit (hard power-off)
C-a s    ask the guest to shut down (power button)
C-a C-a  send C-a
`;

export class HostConsole {
  private escape = false;
  private readonly tty: boolean;
  private readonly onData = (chunk: Buffer): void => this.feed(chunk);

  constructor(private readonly target: ConsoleTarget, private readonly stdin: NodeJS.ReadStream = process.stdin,
    private readonly note: (text: string) => void = (t) => process.stderr.write(t)) {
    this.tty = Boolean(stdin.isTTY);
  }

  attach(): void {
    if (this.tty) this.stdin.setRawMode(true);
    this.stdin.on('data', this.onData);
    this.stdin.resume();
  }

  detach(): void {
    this.stdin.off('data', this.onData);
    if (this.tty) this.stdin.setRawMode(false);
    this.stdin.pause();
  }

  /** Splits input into guest bytes and escape commands (terminal only). */
  feed(chunk: Uint8Array): void {
    if (!this.tty) {
      this.target.input(chunk);
      return;
    }
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.escape) {
        this.escape = false;
        start = i + 1;
        this.command(b);
      } else if (b === CTRL_A) {
        if (i > start) this.target.input(chunk.subarray(start, i));
        this.escape = true;
        start = i + 1;
      }
    }
    if (start < chunk.length) this.target.input(chunk.subarray(start));
  }

  private command(b: number): void {
    switch (String.fromCharCode(b)) {
      case 'x': case 'X':
        this.note('\r\ndisco: power off\r\n');
        this.target.powerOff();
        break;
      case 's': case 'S':
        this.note('\r\ndisco: shutdown requested\r\n');
        this.target.shutdown();
        break;
      case 'h': case 'H': case '?':
        this.note(CONSOLE_HELP.replace(/\n/g, '\r\n'));
        break;
      default:
        if (b === CTRL_A) this.target.input(Uint8Array.of(CTRL_A));
        break;
    }
  }
}
