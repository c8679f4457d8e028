import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import type { Clock } from '../../core/clock.js';
import type { Kind } from '../../config/kinds.js';
import type { Logger } from '../../observability/logger.js';
import type { Node } from '../../gen/outrigger/control/v1/discovery_pb.js';
import { TypeStatusSchema, TypeStatus_State, type TypeStatus } from '../../gen/outrigger/control/v1/operator_pb.js';
import { TYPE_ORDER, compatibleVersion, kindOfTypeUrl, typeUrlOf } from '../protocol.js';
import type { ResponseSink } from './response-sink.js';
import type { NodeView } from './node-view.js';
import type { NodeIdentity } from './selector.js';

/** The per-type status both stream kinds keep (what `outrigger status` shows). */
export interface StreamTypeStatus {
  versionSent: string;
  versionAcked: string;
  error?: string;
  lastAckMs?: number;
  pushLatencyMs?: number;
  /** changedAtMs of the view behind the last response. */
  changeMs: number;
}

export interface HostedStream {
  readonly id: number;
  readonly kind: string;
  node: Node | undefined;
  identity: NodeIdentity | undefined;
  readonly connectedAtMs: number;
  readonly synced: boolean;
  refresh(view: NodeView | undefined): void;
  status(): TypeStatus[];
  close(): void;
}

/** What a stream needs from the control plane. */
export interface StreamHost {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly identifier: string;
  viewFor(stream: HostedStream): NodeView | undefined;
  opened(stream: HostedStream): void;
  sent(stream: HostedStream, kind: Kind): void;
  ack(stream: HostedStream, kind: Kind, t: StreamTypeStatus, version: string): void;
  nack(stream: HostedStream, kind: Kind, t: StreamTypeStatus, message: string): void;
}

/**
 * What SotW and delta streams share: the node handshake (PROTOCOLS.md b1
 * rule 1: the first request carries the node, a later one may not change
 * it), the per-type states behind `status` and `synced`, nonces, and where
 * responses go (the raw HTTP/2 responder of ads-h2.ts, or a queue connect
 * iterates).
 */
export abstract class DiscoveryStream<T extends StreamTypeStatus, Res> implements HostedStream {
  abstract readonly kind: string;
  node: Node | undefined;
  identity: NodeIdentity | undefined;
  readonly connectedAtMs: number;
  protected readonly types = new Map<Kind, T>();
  private nonceSeq = 0;

  constructor(
    protected readonly host: StreamHost,
    readonly id: number,
    readonly out: ResponseSink<Res>,
  ) {
    this.connectedAtMs = host.clock.nowMs();
  }

  abstract refresh(view: NodeView | undefined): void;

  status(): TypeStatus[] {
    return TYPE_ORDER.filter((k) => this.types.has(k)).map((k) => typeStatusOf(k, this.types.get(k)!));
  }

  /** True when every type sent has been ACKed (and not NACKed). */
  get synced(): boolean {
    for (const t of this.types.values()) if (t.versionSent !== '' && (t.versionAcked !== t.versionSent || t.error)) return false;
    return true;
  }

  close(): void {
    this.out.close();
  }

  protected acceptNode(node: Node | undefined): void {
    if (this.node) {
      if (node && node.id !== this.node.id) throw new ConnectError('node changed on the stream', Code.InvalidArgument);
      return;
    }
    if (!node) throw new ConnectError('the first request of a stream must carry the node', Code.InvalidArgument);
    checkNode(node);
    this.node = node;
    this.identity = identityOf(node);
    this.host.opened(this);
  }

  /** The kind of a request's type URL; an unknown one is logged and ignored. */
  protected kindOf(typeUrl: string): Kind | undefined {
    const kind = kindOfTypeUrl(typeUrl);
    if (!kind) this.host.logger.warn({ stream: this.id, typeUrl }, 'unknown type URL; ignored');
    return kind;
  }

  protected nextNonce(): string {
    return `${this.id}-${++this.nonceSeq}`;
  }
}

/** Version negotiation: the sidecar's user_agent_version must be the server's major and at most one minor older. */
export function checkNode(node: Node): void {
  if (node.id === '') throw new ConnectError('node.id is required', Code.InvalidArgument);
  const v = node.userAgentVersionType.case === 'userAgentVersion' ? node.userAgentVersionType.value : '';
  if (v !== '' && !compatibleVersion(v)) {
    throw new ConnectError(`sidecar version ${v} is not supported by this control plane`, Code.FailedPrecondition);
  }
}

export function identityOf(node: Node): NodeIdentity {
  const labels: Record<string, string> = {};
  const meta = node.metadata ?? {};
  const src = typeof meta.labels === 'object' && meta.labels !== null && !Array.isArray(meta.labels) ? meta.labels : meta;
  for (const [k, v] of Object.entries(src)) if (typeof v === 'string') labels[k] = v;
  return { id: node.id, cluster: node.cluster, labels };
}

export function typeStatusOf(kind: Kind, t: StreamTypeStatus): TypeStatus {
  const state = t.error
    ? TypeStatus_State.ERROR
    : t.versionSent === ''
      ? TypeStatus_State.NOT_SENT
      : t.versionAcked === t.versionSent
        ? TypeStatus_State.SYNCED
        : TypeStatus_State.STALE;
  return create(TypeStatusSchema, {
    typeUrl: typeUrlOf(kind),
    versionSent: t.versionSent,
    versionAcked: t.versionAcked,
    state,
    error: t.error ?? '',
    lastAck: t.lastAckMs === undefined ? undefined : timestampFromMs(t.lastAckMs),
    pushLatencyMs: t.pushLatencyMs ?? 0,
  });
}
