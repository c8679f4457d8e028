import { decodeDocument, type DecodeResult, type DecodedResource } from '../../config/decode.js';
import { normalise } from '../../config/loader.js';
import type { ResourceDocument } from '../../config/snapshot.js';
import { toWire, type WireResource } from '../protocol.js';

/** A document with the optional `metadata.selector` stored and generated resources carry (it never travels). */
type SelectableDocument = ResourceDocument & { readonly metadata: { readonly selector?: unknown } };

interface Forms {
  readonly decoded: DecodedResource;
  wire?: WireResource;
}

/**
 * The processed forms of resource documents, computed once per document
 * object: its decoded message (decodeDocument, the sidecar's own checks) and
 * its wire form (normalised, packed as Any, content-hashed). Documents are
 * immutable (stored entries live in immutable StoreStates; a generated set is
 * swapped whole and a provider keeps the objects of what did not change), so
 * the object is the key: when one EndpointSlice changes, a node view of 2,000
 * generated documents decodes and packs one, not 2,000. Entries go with
 * their documents (WeakMap).
 *
 * Only successful decodes are kept: a failure is decoded again with the
 * caller's source, so its errors read exactly as buildSnapshot's would.
 */
export class DocumentForms {
  private readonly byDoc = new WeakMap<object, Forms>();

  /** decodeDocument of the document (selector dropped) at `index` of the set being checked. */
  decode(doc: SelectableDocument, index: number): DecodeResult {
    const known = this.byDoc.get(doc);
    if (known) return { ok: true, value: known.decoded.source.index === index ? known.decoded : { ...known.decoded, source: { index } } };
    const { selector: _s, ...metadata } = doc.metadata;
    const d = decodeDocument({ value: { ...doc, metadata }, source: { index } });
    if (d.ok) this.byDoc.set(doc, { decoded: d.value });
    return d;
  }

  /** The wire form of a document `decode` accepted (toWire of its normalised form, as buildSnapshot's documents). */
  wire(doc: object, decoded: DecodedResource): WireResource {
    const f = this.byDoc.get(doc);
    if (!f) return toWire(normalise(decoded));
    return (f.wire ??= toWire(normalise(f.decoded)));
  }
}
