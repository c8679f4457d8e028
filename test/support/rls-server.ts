import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import {
  RateLimitRequestSchema,
  RateLimitResponse_Code as Code,
  RateLimitResponse_DescriptorStatusSchema,
  RateLimitResponse_RateLimit_Unit as Unit,
  RateLimitResponseSchema,
  type RateLimitRequest,
  type RateLimitResponse,
  type RateLimitResponse_DescriptorStatus,
} from '../../src/gen/envoy/service/ratelimit/v3/rls_pb.js';

/** One node of a domain's descriptor tree, as envoyproxy/ratelimit's YAML config has it. */
export interface RlsDescriptorConfig {
  readonly key: string;
  /** Absent: any value of the key (each value counted apart). */
  readonly value?: string;
  readonly rateLimit?: { readonly unit: Unit; readonly requestsPerUnit: number; readonly name?: string };
  readonly descriptors?: readonly RlsDescriptorConfig[];
}

export interface RlsOptions {
  /** Descriptor trees by domain. */
  readonly domains: Readonly<Record<string, readonly RlsDescriptorConfig[]>>;
  /** Headers the service adds to every answer (response_headers_to_add / request_headers_to_add). */
  readonly responseHeaders?: Readonly<Record<string, string>>;
  readonly requestHeaders?: Readonly<Record<string, string>>;
  /** Wall clock in ms (windows are aligned to it, as the real service's are); default Date.now. */
  readonly now?: () => number;
}

const UNIT_MS: Record<number, number> = {
  [Unit.SECOND]: 1000,
  [Unit.MINUTE]: 60_000,
  [Unit.HOUR]: 3_600_000,
  [Unit.DAY]: 86_400_000,
};

/**
 * A faithful stand-in for envoyproxy/ratelimit (the reference
 * envoy.service.ratelimit.v3 server) over a real grpc-js server on loopback:
 * per domain a descriptor tree; a request descriptor's entries walk it level
 * by level (an exact key+value node first, else a key-only node); the node
 * reached by the last entry holds the limit (none reached: OK, no limit).
 * Counting is a fixed window aligned to the unit, keyed by the domain and
 * the descriptor's entries, incremented by hits_addend (0: 1) even when over
 * the limit, as the real service does. Every descriptor gets a status; the
 * overall code is OVER_LIMIT if any is.
 *
 * `delayMs` makes the service slow; `requests` records what it was asked.
 */
export class RlsServer {
  readonly requests: RateLimitRequest[] = [];
  delayMs = 0;
  private readonly counts = new Map<string, number>();
  private server: grpc.Server | undefined;

  private constructor(
    private readonly opts: RlsOptions,
    public port: number,
  ) {}

  static async start(opts: RlsOptions, port = 0): Promise<RlsServer> {
    const s = new RlsServer(opts, port);
    await s.listen();
    return s;
  }

  async listen(): Promise<void> {
    const server = new grpc.Server();
    const def: grpc.ServiceDefinition = {
      ShouldRateLimit: {
        path: '/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit',
        requestStream: false,
        responseStream: false,
        requestSerialize: (m: RateLimitRequest) => Buffer.from(toBinary(RateLimitRequestSchema, m)),
        requestDeserialize: (b: Buffer) => fromBinary(RateLimitRequestSchema, b),
        responseSerialize: (m: RateLimitResponse) => Buffer.from(toBinary(RateLimitResponseSchema, m)),
        responseDeserialize: (b: Buffer) => fromBinary(RateLimitResponseSchema, b),
      },
    };
    server.addService(def, {
      ShouldRateLimit: (call: grpc.ServerUnaryCall<RateLimitRequest, RateLimitResponse>, cb: grpc.sendUnaryData<RateLimitResponse>) => {
        this.requests.push(call.request);
        const answer = (): void => cb(null, this.decide(call.request));
        if (this.delayMs > 0) setTimeout(answer, this.delayMs);
        else answer();
      },
    });
    this.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`127.0.0.1:${this.port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.server = server;
  }

  /** Stops answering (connections are cut); `listen()` again serves on the same port. */
  stop(): void {
    this.server?.forceShutdown();
    this.server = undefined;
  }

  private decide(req: RateLimitRequest): RateLimitResponse {
    const now = (this.opts.now ?? Date.now)();
    const tree = this.opts.domains[req.domain] ?? [];
    const statuses: RateLimitResponse_DescriptorStatus[] = req.descriptors.map((d) => {
      let level: readonly RlsDescriptorConfig[] | undefined = tree;
      let node: RlsDescriptorConfig | undefined;
      for (const e of d.entries) {
        node = level?.find((n) => n.key === e.key && n.value === e.value) ?? level?.find((n) => n.key === e.key && n.value === undefined);
        if (!node) break;
        level = node.descriptors;
      }
      const rl = node?.rateLimit;
      if (!rl) return create(RateLimitResponse_DescriptorStatusSchema, { code: Code.OK });
      const unitMs = UNIT_MS[rl.unit] ?? 1000;
      const window = Math.floor(now / unitMs);
      const key = `${req.domain}|${d.entries.map((e) => `${e.key}=${e.value}`).join('|')}|${window}`;
      const hits = Number(d.hitsAddend ?? (req.hitsAddend || 1));
      const count = (this.counts.get(key) ?? 0) + hits;
      this.counts.set(key, count);
      const over = count > rl.requestsPerUnit;
      const left = unitMs - (now % unitMs);
      return create(RateLimitResponse_DescriptorStatusSchema, {
        code: over ? Code.OVER_LIMIT : Code.OK,
        currentLimit: { name: rl.name ?? '', requestsPerUnit: rl.requestsPerUnit, unit: rl.unit },
        limitRemaining: over ? 0 : rl.requestsPerUnit - count,
        durationUntilReset: { seconds: BigInt(Math.floor(left / 1000)), nanos: (left % 1000) * 1e6 },
      });
    });
    const headers = (h: Readonly<Record<string, string>> | undefined) => Object.entries(h ?? {}).map(([key, value]) => ({ key, value }));
    return create(RateLimitResponseSchema, {
      overallCode: statuses.some((s) => s.code === Code.OVER_LIMIT) ? Code.OVER_LIMIT : Code.OK,
      statuses,
      responseHeadersToAdd: headers(this.opts.responseHeaders),
      requestHeadersToAdd: headers(this.opts.requestHeaders),
    });
  }
}

export { Unit as RlsUnit };
