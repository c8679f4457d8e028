import { PassThrough } from 'node:stream';
import { Downstream } from '../../src/proxy/downstream/downstream.js';
import type { Exchange } from '../../src/proxy/http/exchange.js';

/**
 * A Downstream with no protocol under it, for in-process filter benchmarks
 * (the filters' own phases, no sockets): writes go nowhere.
 */
export class BenchDownstream extends Downstream {
  readonly rawBody = new PassThrough();
  constructor(headers: Record<string, string>, opts: { method?: string; target?: string; grpc?: boolean } = {}) {
    super(
      opts.grpc ? 'h2' : 'h1',
      { route: 'r', cluster: 'c', request_id: 'id', protocol: opts.grpc ? 'grpc' : 'http1', startWallMs: () => 0 } as unknown as Exchange,
      { clientAddress: '10.0.0.1', scheme: 'https' },
      opts.method ?? 'GET',
      opts.target ?? '/x',
      'app',
      headers,
      opts.grpc ?? false,
    );
  }
  get headersSent(): boolean {
    return false;
  }
  protected writeHead(): void {}
  protected writeHeadEnd(): void {}
  protected writeData(): boolean {
    return true;
  }
  protected onSinkDrain(): void {}
  protected endData(): void {}
  destroy(): void {}
  onClose(): void {}
}
