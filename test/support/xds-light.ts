import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { createClient, type Transport } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import {
  AggregatedDiscoveryService,
  DeltaDiscoveryRequestSchema,
  DiscoveryRequestSchema,
  type DeltaDiscoveryRequest,
  type DeltaDiscoveryResponse,
  type DiscoveryRequest,
  type DiscoveryResponse,
} from '../../src/gen/outrigger/control/v1/discovery_pb.js';
import { AsyncQueue } from '../../src/control/async-queue.js';
import { PROTOCOL_VERSION } from '../../src/control/protocol.js';

export const TYPE = (kind: string): string => `type.googleapis.com/outrigger.config.v1.${kind}`;
export const kindOf = (typeUrl: string): string => typeUrl.slice(typeUrl.lastIndexOf('.') + 1);

export function nodeOf(id: string, cluster = 'light'): MessageInitShape<typeof DeltaDiscoveryRequestSchema>['node'] {
  return { id, cluster, userAgentName: 'light', userAgentVersionType: { case: 'userAgentVersion', value: PROTOCOL_VERSION } };
}

export function transportFor(address: string): Transport {
  return createGrpcTransport({ baseUrl: `http://${address}` });
}

/**
 * A light xDS client for tests and the benchmark: one aggregated stream
 * (SotW or delta), requests pushed by hand, responses read one by one.
 */
abstract class LightStream<Req, Res> {
  readonly requests = new AsyncQueue<Req>();
  private readonly buffered: Res[] = [];
  private waiter: ((r: Res | undefined) => void) | undefined;
  private ended = false;
  error: Error | undefined;
  protected readonly abort = new AbortController();
  /** Called for every response as it arrives (before next() sees it). */
  onResponse: ((r: Res) => void) | undefined;

  protected run(responses: AsyncIterable<Res>): void {
    void (async () => {
      try {
        for await (const r of responses) {
          this.onResponse?.(r);
          const w = this.waiter;
          this.waiter = undefined;
          if (w) w(r);
          else this.buffered.push(r);
        }
      } catch (err) {
        this.error = err as Error;
      } finally {
        this.ended = true;
        const w = this.waiter;
        this.waiter = undefined;
        w?.(undefined);
      }
    })();
  }

  /** The next response; throws after timeoutMs or when the stream ends. */
  async next(timeoutMs = 2000): Promise<Res> {
    const got = this.buffered.shift();
    if (got) return got;
    if (this.ended) throw new Error(`stream ended${this.error ? `: ${this.error.message}` : ''}`);
    const r = await new Promise<Res | undefined>((resolve) => {
      const t = setTimeout(() => {
        this.waiter = undefined;
        resolve(undefined);
      }, timeoutMs);
      this.waiter = (x) => {
        clearTimeout(t);
        resolve(x);
      };
    });
    if (!r) throw new Error(this.ended ? `stream ended${this.error ? `: ${this.error.message}` : ''}` : `no response within ${timeoutMs} ms`);
    return r;
  }

  close(): void {
    this.requests.close();
    this.abort.abort();
  }
}

export class LightDelta extends LightStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse> {
  constructor(transport: Transport) {
    super();
    const c = createClient(AggregatedDiscoveryService, transport);
    this.run(c.deltaAggregatedResources(this.requests, { signal: this.abort.signal }));
  }

  send(req: MessageInitShape<typeof DeltaDiscoveryRequestSchema>): void {
    this.requests.push(create(DeltaDiscoveryRequestSchema, req));
  }

  ack(res: DeltaDiscoveryResponse): void {
    this.send({ typeUrl: res.typeUrl, responseNonce: res.nonce });
  }
}

export class LightSotw extends LightStream<DiscoveryRequest, DiscoveryResponse> {
  constructor(transport: Transport) {
    super();
    const c = createClient(AggregatedDiscoveryService, transport);
    this.run(c.streamAggregatedResources(this.requests, { signal: this.abort.signal }));
  }

  send(req: MessageInitShape<typeof DiscoveryRequestSchema>): void {
    this.requests.push(create(DiscoveryRequestSchema, req));
  }

  /** ACK: the version and nonce of the response, the same names as subscribed. */
  ack(res: DiscoveryResponse, names: string[]): void {
    this.send({ typeUrl: res.typeUrl, versionInfo: res.versionInfo, responseNonce: res.nonce, resourceNames: names });
  }
}
