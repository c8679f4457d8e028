/** The fields of a finished exchange (src/proxy/http/exchange.ts) that telemetry reads. */
export interface ExchangeRecord {
  readonly method: string;
  readonly authority: string;
  readonly path: string;
  readonly protocol: string;
  readonly status: number;
  readonly grpc_status: string | undefined;
  readonly duration_ms: number;
  readonly bytes_in: number;
  readonly bytes_out: number;
  readonly upstream: string | undefined;
  readonly route: string;
  readonly cluster: string;
  readonly request_id: string | undefined;
  /** The W3C trace id of the exchange, when tracing is on (sampled or not). */
  readonly trace_id: string | undefined;
  readonly flags: string | undefined;
  readonly headers: Record<string, string> | undefined;
  /** The verified SPIFFE ID of the downstream mesh mTLS peer. */
  readonly source_principal: string | undefined;
  /** The verified SPIFFE ID of the mesh mTLS upstream that answered. */
  readonly upstream_principal: string | undefined;
}
