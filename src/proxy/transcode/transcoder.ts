import type { DescMethod, DescService } from '@bufbuild/protobuf';
import { durationMs } from '../../core/duration.js';
import {
  PathUnescapeMode,
  StreamFormat,
  type Transcode,
} from '../../gen/outrigger/config/v1/route_pb.js';
import { DescriptorsPending, EMPTY_POOL, loadDescriptors, type DescriptorContext, type DescriptorPool } from './descriptors.js';
import { compileBindings, type Binding } from './http-rule.js';
import { buildOpenApi } from './openapi.js';
import type { UnescapeMode } from './path-unescape.js';
import { RestMatcher } from './rest-matcher.js';

export type StreamFormatName = 'json' | 'ndjson' | 'sse';

export interface TranscodeSettings {
  readonly emitDefaults: boolean;
  readonly protoNames: boolean;
  readonly enumsAsInts: boolean;
  readonly indent: number;
  readonly ignoreUnknownQuery: boolean;
  readonly ignoreUnknownJson: boolean;
  readonly bodyWins: boolean;
  readonly maxRequestBytes: number;
  readonly maxResponseBytes: number;
  readonly defaultStream: StreamFormatName;
  readonly unescape: UnescapeMode;
  readonly forward: ReadonlySet<string>;
  /** Browser origins allowed (CORS, WebSocket Origin); `*` any; empty: same-origin only. */
  readonly origins: ReadonlySet<string>;
  readonly wsPingMs: number;
  readonly wsTokenCookie: string;
  readonly wsMaxMessageBytes: number;
  /** Where the OpenAPI document is served (GET/HEAD); undefined: not served. */
  readonly openapiPath: string | undefined;
}

export const DEFAULT_OPENAPI_PATH = '/.well-known/openapi.json';

export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

export class TranscodeCompileError extends Error {}

/**
 * A route's transcoder, compiled once per config version: the descriptor
 * pool, the REST matcher over every binding of the exposed services, and the
 * settings with defaults applied. Immutable; shared by all requests of the
 * version.
 */
export class Transcoder {
  private constructor(
    readonly pool: DescriptorPool,
    readonly services: readonly DescService[],
    readonly matcher: RestMatcher,
    readonly settings: TranscodeSettings,
    /** Every method of the exposed services by its gRPC path `/<pkg.Service>/<Method>` (gRPC-Web, Connect, WebSocket). */
    readonly methods: ReadonlyMap<string, DescMethod>,
    readonly bindings: readonly Binding[],
    /** Set while reflected descriptors have not arrived: every non-gRPC request answers 503 with this. */
    readonly unavailable: string | undefined = undefined,
  ) {}

  private openapiBody: Buffer | undefined;

  /**
   * The OpenAPI 3.1 document of the exposed services, serialized. Generated
   * on first use and kept for the life of this transcoder, so once per
   * config (or descriptor) version.
   */
  openapi(): Buffer {
    this.openapiBody ??= Buffer.from(JSON.stringify(this.openapiDocument(), null, this.settings.indent || undefined));
    return this.openapiBody;
  }

  /** The document as an object (for merging the routes of a listener). */
  openapiDocument(): ReturnType<typeof buildOpenApi> {
    return buildOpenApi(this.services, this.bindings, {
      title: this.services.map((s) => s.typeName).join(', ') || 'transcoded services',
      version: this.version,
      protoNames: this.settings.protoNames,
      enumsAsInts: this.settings.enumsAsInts,
    });
  }

  /** The descriptor content version (a hash of the set), the document's info.version. */
  get version(): string {
    return this.pool.version;
  }

  static compile(t: Transcode, cache: Map<string, DescriptorPool>, dc?: DescriptorContext): Transcoder {
    try {
      let pool: DescriptorPool;
      try {
        pool = loadDescriptors(t, cache, dc);
      } catch (err) {
        if (!(err instanceof DescriptorsPending)) throw err;
        // Reflection has not answered yet: serve gRPC pass-through, answer the rest 503 until it does.
        return new Transcoder(EMPTY_POOL, [], new RestMatcher([]), settingsOf(t), new Map(), [], err.message);
      }
      const services: DescService[] = [];
      if (t.services.length > 0) {
        for (const name of t.services) {
          const s = pool.files.getService(name);
          if (!s) throw new TranscodeCompileError(`service "${name}" is not in the descriptor set`);
          services.push(s);
        }
      } else {
        for (const f of pool.files.files) services.push(...f.services);
      }
      const bindings = compileBindings(services);
      const matcher = new RestMatcher(bindings);
      const methods = new Map<string, DescMethod>();
      for (const s of services) for (const m of s.methods) methods.set(`/${s.typeName}/${m.name}`, m);
      return new Transcoder(pool, services, matcher, settingsOf(t), methods, bindings);
    } catch (err) {
      if (err instanceof TranscodeCompileError) throw err;
      throw new TranscodeCompileError((err as Error).message);
    }
  }
}

function settingsOf(t: Transcode): TranscodeSettings {
  const p = t.print;
  const r = t.relax;
  return {
    emitDefaults: p?.emitDefaults ?? false,
    protoNames: p?.protoNames ?? false,
    enumsAsInts: p?.enumsAsInts ?? false,
    indent: p?.indent ?? 0,
    ignoreUnknownQuery: r?.ignoreUnknownQueryParameters ?? false,
    ignoreUnknownJson: r?.ignoreUnknownJsonFields ?? false,
    bodyWins: r?.allowPathBodyConflicts ?? false,
    maxRequestBytes: Number(t.maxRequestBodyBytes) || DEFAULT_MAX_BODY_BYTES,
    maxResponseBytes: Number(t.maxResponseBodyBytes) || DEFAULT_MAX_BODY_BYTES,
    defaultStream:
      t.defaultStreamFormat === StreamFormat.NDJSON ? 'ndjson' : t.defaultStreamFormat === StreamFormat.SSE ? 'sse' : 'json',
    unescape:
      t.pathUnescape === PathUnescapeMode.ALL
        ? 'all'
        : t.pathUnescape === PathUnescapeMode.ALL_EXCEPT_SLASH
          ? 'except_slash'
          : 'except_reserved',
    forward: new Set(t.forwardHeaders.map((h) => h.toLowerCase())),
    origins: new Set(t.allowedOrigins),
    wsPingMs: durationMs(t.websocket?.pingInterval, 0) || 30_000,
    wsTokenCookie: t.websocket?.tokenCookie || 'token',
    openapiPath: t.openapi?.disabled ? undefined : t.openapi?.path || DEFAULT_OPENAPI_PATH,
    wsMaxMessageBytes: Number(t.websocket?.maxMessageBytes ?? 0n) || Number(t.maxRequestBodyBytes) || DEFAULT_MAX_BODY_BYTES,
  };
}
