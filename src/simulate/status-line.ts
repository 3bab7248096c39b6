/**
 * One live status line at the bottom of a terminal: erased before any other output is
 * written and drawn again after, so it never mixes with the program's lines. It is drawn only
 * when the output stands at the start of a line, so a partial line is never erased.
 */
export class StatusLine {
  private text = '';
  private drawn = false;
  private atLineStart = true;

  constructor(private readonly stream: NodeJS.WriteStream) {}

  private get enabled(): boolean {
    return this.stream.isTTY === true;
  }

  /** Writes output through, keeping the status line below it. */
  write(target: NodeJS.WritableStream, chunk: string | Buffer): void {
    this.erase();
    target.write(chunk);
    if (chunk.length > 0) this.atLineStart = chunk.toString().endsWith('\n');
    this.draw();
  }

  update(text: string): void {
    this.text = text;
    this.erase();
    this.draw();
  }

  /** Removes the line for good (before the summary). */
  close(): void {
    this.erase();
    this.text = '';
  }

  private erase(): void {
    if (!this.drawn) return;
    this.stream.write('\r\x1b[2K');
    this.drawn = false;
  }

  private draw(): void {
    if (!this.enabled || !this.text || !this.atLineStart) return;
    this.stream.write(this.text);
    this.drawn = true;
  }
}
