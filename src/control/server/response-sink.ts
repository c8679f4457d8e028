/** Where a discovery stream puts its responses; close(err) ends the stream with that status. */
export interface ResponseSink<T> {
  push(msg: T): void;
  close(err?: Error): void;
}
