/**
 * Incremental base64 for `application/grpc-web-text`: every complete 4-char
 * group is decoded as it arrives (so `=` padding in the middle of the stream,
 * which senders produce at each flush, is fine); the remainder waits for the
 * next chunk. Whitespace is ignored.
 */
export class Base64ChunkDecoder {
  private rest = '';
  push(c: Buffer): Buffer {
    const s = this.rest + c.toString('latin1').replace(/[\s]/g, '');
    const n = s.length - (s.length % 4);
    this.rest = s.slice(n);
    if (n === 0) return Buffer.alloc(0);
    const parts: Buffer[] = [];
    // A group with padding ends one base64 run; decode runs separately.
    let from = 0;
    for (let i = 0; i < n; i += 4) {
      if (s.charCodeAt(i + 3) === 61 /* = */) {
        parts.push(Buffer.from(s.slice(from, i + 4), 'base64'));
        from = i + 4;
      }
    }
    if (from < n) parts.push(Buffer.from(s.slice(from, n), 'base64'));
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }
  get pending(): boolean {
    return this.rest.length > 0;
  }
}
