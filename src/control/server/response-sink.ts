/** Where a discovery stream puts its responses; close(err) ends the stream with that status. */
export interface ResponseSink<T> {
  push(msg: T): void;
  /**
   * `msg`, followed on the wire by `fields`: fields of the same message
   * already in wire form (tags included), shared by every stream that sends
   * them and never copied (a push of 1,000 assignments to 100 sidecars
   * writes the same bytes 100 times). Optional: a sink without it is given
   * the fields as the message's unknown fields through `push`.
   */
  pushEncoded?(msg: T, fields: readonly Uint8Array[]): void;
  close(err?: Error): void;
}
