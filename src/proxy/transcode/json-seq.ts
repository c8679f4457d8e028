/**
 * Splits a streamed request body into JSON values as bytes arrive, without
 * holding more than the value being read: either a JSON array (`[a, b, …]`,
 * Envoy's client-streaming form) or NDJSON (one value per line). It tracks
 * only string/escape state and nesting depth; each complete element's text
 * is handed to `onValue` for JSON.parse. States of the array form:
 *   start → (before '[') → in_array → (element | between) … → done
 */
export class JsonSeqSplitter {
  private mode: 'detect' | 'array' | 'ndjson' | 'done' = 'detect';
  private depth = 0;
  private inString = false;
  private escaped = false;
  private cur = '';
  private error: string | undefined;

  constructor(
    private readonly onValue: (text: string) => void,
    private readonly maxValueChars: number,
    ndjson: boolean,
  ) {
    if (ndjson) this.mode = 'ndjson';
  }

  get failed(): string | undefined {
    return this.error;
  }

  push(chunk: string): void {
    for (let i = 0; i < chunk.length && this.error === undefined; i++) this.step(chunk[i]!);
  }

  /** Call at end of body; reports a truncated array or value. */
  end(): void {
    if (this.error !== undefined) return;
    if (this.mode === 'ndjson') return this.flushLine();
    if (this.mode === 'detect') return; // empty body: no messages
    if (this.mode !== 'done') this.error = 'truncated JSON array';
  }

  private step(c: string): void {
    switch (this.mode) {
      case 'done':
        if (!/\s/.test(c)) this.error = 'data after the end of the JSON array';
        return;
      case 'detect':
        if (/\s/.test(c)) return;
        if (c === '[') this.mode = 'array';
        else {
          // Not an array: treat as NDJSON (one value per line).
          this.mode = 'ndjson';
          this.step(c);
        }
        return;
      case 'ndjson':
        if (c === '\n' && !this.inString) return this.flushLine();
        this.track(c);
        this.cur += c;
        break;
      case 'array':
        if (this.depth === 0 && !this.inString) {
          if (c === ',' || c === ']') {
            const t = this.cur.trim();
            if (t !== '') this.emit(t);
            else if (c === ',' || this.sawElement) {
              this.error = 'empty element in JSON array';
              return;
            }
            this.cur = '';
            if (c === ']') this.mode = 'done';
            return;
          }
        }
        this.track(c);
        this.cur += c;
    }
    if (this.cur.length > this.maxValueChars) this.error = `a message is larger than ${this.maxValueChars} characters`;
  }

  private sawElement = false;

  private emit(text: string): void {
    this.sawElement = true;
    this.onValue(text);
  }

  private flushLine(): void {
    const t = this.cur.trim();
    this.cur = '';
    if (t !== '') this.emit(t);
  }

  private track(c: string): void {
    if (this.inString) {
      if (this.escaped) this.escaped = false;
      else if (c === '\\') this.escaped = true;
      else if (c === '"') this.inString = false;
      return;
    }
    if (c === '"') this.inString = true;
    else if (c === '{' || c === '[') this.depth++;
    else if (c === '}' || c === ']') this.depth--;
  }
}
