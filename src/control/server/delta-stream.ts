import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import type { Kind } from '../../config/kinds.js';
import {
  DeltaDiscoveryResponseSchema,
  type DeltaDiscoveryRequest,
  type DeltaDiscoveryResponse,
} from '../../gen/outrigger/control/v1/discovery_pb.js';
import { AsyncQueue } from '../async-queue.js';
import type { ResponseSink } from './response-sink.js';
import { TYPE_ORDER, WILDCARD_KINDS, typeUrlOf, versionOfSet } from '../protocol.js';
import type { NodeView } from './node-view.js';
import { DiscoveryStream, type StreamHost, type StreamTypeStatus } from './stream-host.js';

/** Marks a name the client was told does not exist (so it is not told again). */
const ABSENT = '';

interface TypeState extends StreamTypeStatus {
  wildcard: boolean;
  names: Set<string>;
  /** What the client has: name → resource version (content hash), or ABSENT. */
  client: Map<string, string>;
  sentNonce: string;
  initialised: boolean;
  /** The view's version of this kind when `client` was last brought up to date (a refresh with the same one has nothing to send). */
  upToDate: string | undefined;
}

/**
 * One DeltaAggregatedResources stream (PROTOCOLS.md b1, delta rules):
 * subscription changes are honoured whatever the nonce; the client's
 * initial_resource_versions seed what it has; only changed resources are
 * sent, deletions and never-existing names go in removed_resources; a name
 * unsubscribed while a wildcard still covers it is sent again.
 */
export class DeltaStream extends DiscoveryStream<TypeState, DeltaDiscoveryResponse> {
  readonly kind = 'delta';

  constructor(host: StreamHost, id: number, out: ResponseSink<DeltaDiscoveryResponse> = new AsyncQueue<DeltaDiscoveryResponse>()) {
    super(host, id, out);
  }

  handle(req: DeltaDiscoveryRequest): void {
    this.acceptNode(req.node);
    const kind = this.kindOf(req.typeUrl);
    if (!kind) return;
    let t = this.types.get(kind);
    if (!t) {
      t = { wildcard: false, names: new Set(), client: new Map(), sentNonce: '', initialised: false, upToDate: undefined, versionSent: '', versionAcked: '', changeMs: 0 };
      this.types.set(kind, t);
    }
    if (req.responseNonce !== '' && req.responseNonce === t.sentNonce) {
      if (req.errorDetail) this.host.nack(this, kind, t, req.errorDetail.message);
      else this.host.ack(this, kind, t, t.versionSent);
    }
    if (!t.initialised) {
      t.initialised = true;
      for (const [n, v] of Object.entries(req.initialResourceVersions)) t.client.set(n, v);
      // Legacy wildcard: a first request naming nothing.
      if (req.resourceNamesSubscribe.length === 0 && WILDCARD_KINDS.has(kind)) t.wildcard = true;
    }
    for (const n of req.resourceNamesSubscribe) {
      if (n === '*') t.wildcard = WILDCARD_KINDS.has(kind);
      else t.names.add(n);
    }
    for (const n of req.resourceNamesUnsubscribe) {
      if (n === '*') t.wildcard = false;
      else t.names.delete(n);
      // Still covered by the wildcard: forget the client's version so it is sent again;
      // not covered: the client drops it, so forget it too.
      t.client.delete(n);
    }
    if (!req.errorDetail) this.push(kind, this.host.viewFor(this));
  }

  /**
   * The node's view changed: additions and updates in warming order
   * (clusters → endpoints → listeners → routes), then removals in reverse
   * order, so nothing is dropped before what referred to it (make before break).
   */
  refresh(view: NodeView | undefined): void {
    for (const kind of TYPE_ORDER) this.push(kind, view, 'updates');
    for (const kind of [...TYPE_ORDER].reverse()) this.push(kind, view, 'removals');
  }

  private push(kind: Kind, view: NodeView | undefined, part: 'all' | 'updates' | 'removals' = 'all'): void {
    const t = this.types.get(kind);
    if (!t || !view) return;
    // A push of other kinds' changes (an EDS change: the Cluster, Listener and route versions stay) costs nothing here;
    // a request (part 'all') may have changed the subscription, so it always looks.
    const kindVersion = view.versions.get(kind);
    if (part !== 'all' && t.upToDate === kindVersion) return;
    if (part !== 'updates') t.upToDate = kindVersion;
    const all = view.byKind.get(kind)!;
    const interest = new Set<string>(t.names);
    if (t.wildcard) for (const n of [...all.keys(), ...t.client.keys()]) interest.add(n);
    const resources = [];
    const removed: string[] = [];
    for (const n of interest) {
      const r = all.get(n);
      if (r) {
        if (part !== 'removals' && t.client.get(n) !== r.hash) {
          resources.push({ name: n, version: r.hash, resource: r.any });
          t.client.set(n, r.hash);
        }
      } else if (part !== 'updates' && (t.client.get(n) !== ABSENT || !t.client.has(n))) {
        removed.push(n);
        if (t.names.has(n)) t.client.set(n, ABSENT);
        else t.client.delete(n);
      }
    }
    // Names no longer of interest (unsubscribed): the client drops them.
    for (const n of [...t.client.keys()]) {
      if (!interest.has(n)) t.client.delete(n);
    }
    if (resources.length === 0 && removed.length === 0) return;
    const nonce = this.nextNonce();
    t.sentNonce = nonce;
    t.versionSent = versionOfSet([...t.client].filter(([, v]) => v !== ABSENT).map(([name, hash]) => ({ name, hash }) as never));
    t.changeMs = view.changedAtMs;
    this.host.sent(this, kind);
    this.out.push(
      create(DeltaDiscoveryResponseSchema, {
        systemVersionInfo: String(view.revision),
        resources,
        typeUrl: typeUrlOf(kind),
        nonce,
        removedResources: removed,
        controlPlane: { identifier: this.host.identifier, changeTime: timestampFromMs(view.changedAtMs) },
      }),
    );
  }
}
