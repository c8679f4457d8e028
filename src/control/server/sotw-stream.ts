import { create, toBinary } from '@bufbuild/protobuf';
import { AnySchema, timestampFromMs } from '@bufbuild/protobuf/wkt';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import type { Kind } from '../../config/kinds.js';
import {
  ControlPlaneSchema,
  DiscoveryResponseSchema,
  type DiscoveryRequest,
  type DiscoveryResponse,
} from '../../gen/outrigger/control/v1/discovery_pb.js';
import { TypeStatus_State } from '../../gen/outrigger/control/v1/operator_pb.js';
import { AsyncQueue } from '../async-queue.js';
import type { ResponseSink } from './response-sink.js';
import { SOTW_EDS_SUBSETS, TYPE_ORDER, WILDCARD_KINDS, typeUrlOf, versionOfSet, type WireResource } from '../protocol.js';
import type { NodeView } from './node-view.js';
import { DiscoveryStream, type StreamHost, type StreamTypeStatus } from './stream-host.js';

/**
 * Per type on one state-of-the-world stream.
 * States: unsubscribed → subscribed, nothing sent (NOT_SENT) → sent, awaiting
 * ACK (STALE) → ACKed (SYNCED) | NACKed (ERROR) → sent again on the next change.
 */
interface TypeState extends StreamTypeStatus {
  wildcard: boolean;
  everNamed: boolean;
  names: Set<string>;
  sentNonce: string;
  /** What the last response held, for make-before-break removal. */
  sent: ReadonlyMap<string, WireResource>;
  /** The view and subscription behind `sent`: an ACK on the same ones needs no work (O(1)). */
  sentView: NodeView | undefined;
  subKey: string;
  /** The resource_names array `names` was last read from: the same array again (SotwRequestDecoder) is the same subscription. */
  namesFrom: readonly string[] | undefined;
}

/** A field of DiscoveryResponse already in wire form (tag written by toBinary, then these bytes). */
interface PackedField {
  readonly no: number;
  readonly wireType: WireType;
  readonly data: Uint8Array;
}

/**
 * What a subscription selects from one view: the set, its version and the
 * resources already encoded (field 2 of DiscoveryResponse, each Any
 * serialized once per view). Computed once per view and subscription,
 * shared by every stream with the same view: a push encodes only the
 * version, type URL and nonce per stream.
 */
interface Selection {
  readonly set: ReadonlyMap<string, WireResource>;
  readonly version: string;
  readonly packed: readonly PackedField[];
  /** `packed` as one run of wire bytes (tags included), for sinks that write it uncopied; made on first use. */
  encoded?: Uint8Array;
}
const RESOURCES_FIELD = 2;
const CONTROL_PLANE_FIELD = 6;
const lengthDelimited = (no: number, bytes: Uint8Array): PackedField => ({ no, wireType: WireType.LengthDelimited, data: new BinaryWriter().bytes(bytes).finish() });
/** Each resource as field 2 of DiscoveryResponse, encoded once per wire resource (unchanged ones keep theirs across views). */
const packedResources = new WeakMap<WireResource, PackedField>();
function packSet(set: ReadonlyMap<string, WireResource>): PackedField[] {
  const out: PackedField[] = [];
  for (const r of set.values()) {
    let f = packedResources.get(r);
    if (!f) packedResources.set(r, (f = lengthDelimited(RESOURCES_FIELD, toBinary(AnySchema, r.any))));
    out.push(f);
  }
  return out;
}

/** Fields in wire form, tags included (what toBinary writes for them as unknown fields). */
function encodeFields(fields: readonly PackedField[]): Uint8Array {
  const w = new BinaryWriter();
  for (const f of fields) w.tag(f.no, f.wireType).raw(f.data);
  return w.finish();
}
const encodedOf = (sel: Selection): Uint8Array => (sel.encoded ??= encodeFields(sel.packed));

const selections = new WeakMap<NodeView, Map<string, Selection>>();
/** control_plane of DiscoveryResponse, encoded once per view and identifier (also with its tag: `encoded`). */
const controlPlanes = new WeakMap<NodeView, Map<string, PackedField & { encoded: Uint8Array }>>();

function controlPlaneOf(view: NodeView, identifier: string): PackedField & { encoded: Uint8Array } {
  let byId = controlPlanes.get(view);
  if (!byId) controlPlanes.set(view, (byId = new Map()));
  let f = byId.get(identifier);
  if (!f) {
    const packed = lengthDelimited(CONTROL_PLANE_FIELD, toBinary(ControlPlaneSchema, create(ControlPlaneSchema, { identifier, changeTime: timestampFromMs(view.changedAtMs) })));
    f = { ...packed, encoded: encodeFields([packed]) };
    byId.set(identifier, f);
  }
  return f;
}

function selectionOf(view: NodeView, kind: Kind, wildcard: boolean, names: ReadonlySet<string>, subKey: string): Selection {
  let byKey = selections.get(view);
  if (!byKey) selections.set(view, (byKey = new Map()));
  const key = `${kind}\n${subKey}`;
  let sel = byKey.get(key);
  if (!sel) {
    const all = view.byKind.get(kind)!;
    let set: ReadonlyMap<string, WireResource>;
    if (wildcard) set = all;
    else {
      const m = new Map<string, WireResource>();
      for (const n of names) {
        const r = all.get(n);
        if (r) m.set(n, r);
      }
      set = m;
    }
    const version = wildcard ? view.versions.get(kind)! : versionOfSet(set.values());
    sel = { set, version, packed: packSet(set) };
    byKey.set(key, sel);
  }
  return sel;
}

/** EDS subsets (edsSubset), computed once per (what the sidecars have, what they should have): streams in step share one. */
const subsets = new WeakMap<ReadonlyMap<string, WireResource>, WeakMap<Selection, Selection>>();
function changedSince(had: ReadonlyMap<string, WireResource>, want: Selection): Selection {
  let byWant = subsets.get(had);
  if (!byWant) subsets.set(had, (byWant = new WeakMap()));
  let sub = byWant.get(want);
  if (!sub) {
    const set = new Map<string, WireResource>();
    for (const [n, r] of want.set) if (had.get(n)?.hash !== r.hash) set.set(n, r);
    sub = { set, version: want.version, packed: packSet(set) };
    byWant.set(want, sub);
  }
  return sub;
}

/**
 * One StreamAggregatedResources stream, implementing PROTOCOLS.md b1: the
 * first request carries the node; ACK/NACK by `error_detail` on the nonce of
 * the latest response; stale nonces ignored; a response only when the
 * version of what the sidecar should have differs from what it has; wildcard
 * only for clusters and listeners; pushes in warming order with removals
 * last (a removed cluster or listener is first kept, then dropped after the
 * routes that no longer need it).
 */
export class SotwStream extends DiscoveryStream<TypeState, DiscoveryResponse> {
  readonly kind = 'sotw';

  constructor(host: StreamHost, id: number, out: ResponseSink<DiscoveryResponse> = new AsyncQueue<DiscoveryResponse>()) {
    super(host, id, out);
  }

  handle(req: DiscoveryRequest): void {
    this.acceptNode(req.node);
    const kind = this.kindOf(req.typeUrl);
    if (!kind) return;
    const t = this.typeState(kind);
    if (req.responseNonce !== '' && req.responseNonce !== t.sentNonce) return; // stale (rule 4)
    if (req.responseNonce !== '') {
      if (req.errorDetail) this.host.nack(this, kind, t, req.errorDetail.message);
      else this.host.ack(this, kind, t, req.versionInfo);
    } else if (req.versionInfo !== '' && t.versionSent === '') {
      // Reconnect: the sidecar already has this version; no need to resend it.
      t.versionSent = req.versionInfo;
      t.versionAcked = req.versionInfo;
    }
    const resubscribed = this.subscribe(kind, t, req.resourceNames);
    if (req.errorDetail) return;
    const view = this.host.viewFor(this);
    // An ACK of what the current view and subscription already produced: nothing to do.
    if (!resubscribed && view !== undefined && view === t.sentView) return;
    this.maybeSend(kind, view);
  }

  /** The node's view changed: push in warming order, removals last. */
  refresh(view: NodeView | undefined): void {
    if (!view) return;
    const finals: Kind[] = [];
    for (const kind of TYPE_ORDER) {
      const t = this.types.get(kind);
      if (!t || !(t.wildcard || t.names.size > 0)) continue;
      if (t.sentView === view) continue;
      const want = this.desired(kind, t, view);
      const removed = WILDCARD_KINDS.has(kind) && want.version !== t.versionSent ? [...t.sent.keys()].filter((n) => !want.set.has(n)) : [];
      if (removed.length > 0) {
        const keep = new Map(want.set);
        for (const n of removed) keep.set(n, t.sent.get(n)!);
        this.sendSet(kind, t, { set: keep, version: versionOfSet(keep.values()), packed: packSet(keep) }, view);
        t.sentView = undefined; // a transitional set: the final one follows
        finals.push(kind);
      } else this.maybeSend(kind, view);
    }
    for (const kind of finals.reverse()) this.maybeSend(kind, view);
  }

  private typeState(kind: Kind): TypeState {
    let t = this.types.get(kind);
    if (!t) {
      t = {
        wildcard: false,
        everNamed: false,
        names: new Set(),
        sentNonce: '',
        sent: new Map(),
        sentView: undefined,
        subKey: '',
        namesFrom: undefined,
        versionSent: '',
        versionAcked: '',
        changeMs: 0,
      };
      this.types.set(kind, t);
    }
    return t;
  }

  /** Records the subscription; true when it differs from the previous one. */
  private subscribe(kind: Kind, t: TypeState, names: readonly string[]): boolean {
    if (names === t.namesFrom) return false;
    t.namesFrom = names.length > 0 ? names : undefined;
    let wildcard: boolean;
    if (names.includes('*')) wildcard = WILDCARD_KINDS.has(kind);
    else if (names.length === 0) wildcard = !t.everNamed && WILDCARD_KINDS.has(kind);
    else wildcard = false;
    let same = wildcard === t.wildcard;
    let named = 0;
    for (const n of names) {
      if (n === '*') continue;
      named++;
      if (!t.names.has(n)) same = false;
    }
    if (named !== t.names.size) same = false;
    if (same) return false; // common case (an ACK repeats the subscription): no allocation
    t.wildcard = wildcard;
    // Any name sent, "*" included, ends the legacy "empty = wildcard" reading (b1 rule 6).
    if (names.length > 0) t.everNamed = true;
    t.names = new Set(names.filter((n) => n !== '*'));
    t.subKey = wildcard ? '*' : [...t.names].sort().join('\n');
    t.sentView = undefined;
    return true;
  }

  private desired(kind: Kind, t: TypeState, view: NodeView): Selection {
    return selectionOf(view, kind, t.wildcard, t.names, t.subKey);
  }

  private maybeSend(kind: Kind, view: NodeView | undefined): void {
    const t = this.types.get(kind);
    if (!view || !t || !(t.wildcard || t.names.size > 0)) return;
    const want = this.desired(kind, t, view);
    if (want.version === t.versionSent) {
      t.sent = want.set;
      t.sentView = view;
      return;
    }
    this.sendSet(kind, t, want, view, this.edsSubset(kind, t, want));
  }

  /**
   * What goes on the wire for `want`: all of it, or (PROTOCOLS.md b1 rule 7:
   * EDS responses may carry subsets) only the assignments that differ from
   * what the sidecar has, when it merges subsets (client feature
   * SOTW_EDS_SUBSETS) and has ACKed the last response of the type, so that
   * what it has is known exactly (`sent`). Otherwise (nothing sent yet, a
   * response un-ACKed or NACKed) the whole set: merged onto anything it
   * gives every subscribed name its current assignment. The version is the
   * whole set's either way.
   */
  private edsSubset(kind: Kind, t: TypeState, want: Selection): Selection {
    if (kind !== 'ClusterLoadAssignment' || !this.mergesEds || t.versionSent === '' || t.versionAcked !== t.versionSent || t.error !== undefined) return want;
    return changedSince(t.sent, want);
  }

  private get mergesEds(): boolean {
    return this.node?.clientFeatures.includes(SOTW_EDS_SUBSETS) ?? false;
  }

  private sendSet(kind: Kind, t: TypeState, sel: Selection, view: NodeView, wire: Selection = sel): void {
    const version = sel.version;
    const nonce = this.nextNonce();
    t.versionSent = version;
    t.sentNonce = nonce;
    t.sent = sel.set;
    t.sentView = view;
    t.changeMs = view.changedAtMs;
    this.host.sent(this, kind);
    // resources and control_plane travel as pre-encoded fields ($unknown is written verbatim by toBinary);
    // in memory the message's `resources` is empty: read responses off the wire, not off this queue.
    const res = create(DiscoveryResponseSchema, { versionInfo: version, typeUrl: typeUrlOf(kind), nonce });
    const controlPlane = controlPlaneOf(view, this.host.identifier);
    if (this.out.pushEncoded) {
      this.out.pushEncoded(res, [encodedOf(wire), controlPlane.encoded]);
      return;
    }
    res.$unknown = [...wire.packed, controlPlane];
    this.out.push(res);
  }
}

export { TypeStatus_State };
