import { createHash } from 'node:crypto';
import type { RouteConfiguration } from '../../gen/outrigger/config/v1/route_pb.js';
import type { Transcode } from '../../gen/outrigger/config/v1/route_pb.js';
import { mergeOpenApi } from './openapi.js';
import type { Transcoder } from './transcoder.js';

/**
 * The listener-wide OpenAPI document(s): for a request that no route
 * matches, `GET <openapi path>` answers one document merging every
 * transcoding route of the listener that serves that path (so
 * `/.well-known/openapi.json` works on a listener whose transcoding routes
 * only cover `/v1/…`). Built on first use, once per state.
 */
export class ListenerOpenApi {
  private readonly bodies = new Map<string, { body: Buffer; etag: string }>();

  private constructor(private readonly byPath: ReadonlyMap<string, readonly Transcoder[]>) {}

  static build(rc: RouteConfiguration | undefined, transcoders: ReadonlyMap<Transcode, Transcoder>): ListenerOpenApi | undefined {
    if (!rc) return undefined;
    const byPath = new Map<string, Transcoder[]>();
    for (const vh of rc.virtualHosts) {
      for (const r of vh.routes) {
        if (r.action.case !== 'route' || !r.action.value.transcode) continue;
        const tr = transcoders.get(r.action.value.transcode);
        const path = tr?.settings.openapiPath;
        if (!tr || path === undefined || tr.unavailable !== undefined) continue;
        const list = byPath.get(path) ?? [];
        if (!list.includes(tr)) list.push(tr);
        byPath.set(path, list);
      }
    }
    return byPath.size > 0 ? new ListenerOpenApi(byPath) : undefined;
  }

  /** The document served at `path`, or undefined when no transcoding route of the listener serves one there. */
  get(path: string): { body: Buffer; etag: string } | undefined {
    const hit = this.bodies.get(path);
    if (hit) return hit;
    const trs = this.byPath.get(path);
    if (!trs) return undefined;
    const services = [...new Set(trs.flatMap((t) => t.services.map((s) => s.typeName)))];
    const version = createHash('sha256').update(trs.map((t) => t.version).join(',')).digest('hex').slice(0, 16);
    const doc = mergeOpenApi(
      trs.map((t) => t.openapiDocument()),
      services.join(', ') || 'transcoded services',
      version,
    );
    const out = { body: Buffer.from(JSON.stringify(doc)), etag: `"${version}"` };
    this.bodies.set(path, out);
    return out;
  }
}
