import type { Writable } from 'node:stream';
import type { H1Downstream } from '../downstream/h1-downstream.js';

/** Streams the HTTP/1.1 request body into `up`, with backpressure and the listener's body limit. */
export function pumpBody(ds: H1Downstream, maxBody: number, up: Writable, tooLarge: () => void): void {
  // The client's body, or a filter's decoded copy of it.
  const req = ds.requestBody;
  const ex = ds.ex;
  const chain = ds.chain;
  const reqData = chain !== undefined && chain.hasRequestData;
  req.on('data', (c: Buffer) => {
    ex.bytes_in += c.length;
    if (maxBody > 0 && ex.bytes_in > maxBody) {
      req.pause();
      tooLarge();
      return;
    }
    if (reqData) c = chain.requestData(ds, c);
    if (!up.write(c)) req.pause();
  });
  up.on('drain', () => req.resume());
  req.once('end', () => up.end());
}
