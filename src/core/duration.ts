import type { Duration } from '@bufbuild/protobuf/wkt';

/** Milliseconds of a protobuf Duration, or `defaultMs` when it is absent. */
export function durationMs(d: Duration | undefined, defaultMs: number): number {
  if (!d) return defaultMs;
  return Number(d.seconds) * 1000 + d.nanos / 1e6;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a CLI duration such as "5s", "250ms", "1m" or a bare number of seconds. */
export function parseDurationFlag(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new Error(`invalid duration "${text}" (use e.g. 250ms, 5s, 1m)`);
  return Number(m[1]) * UNIT_MS[m[2] ?? 's']!;
}

const GRPC_TIMEOUT_UNIT_MS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 0.001,
  n: 0.000001,
};

/**
 * Parses a `grpc-timeout` header ("1-8 ASCII digits + unit", gRPC over HTTP/2
 * spec). Returns milliseconds, or -1 when the header is malformed.
 */
export function parseGrpcTimeout(value: string): number {
  const n = value.length;
  if (n < 2 || n > 9) return -1;
  const unit = GRPC_TIMEOUT_UNIT_MS[value[n - 1]!];
  if (unit === undefined) return -1;
  let v = 0;
  for (let i = 0; i < n - 1; i++) {
    const c = value.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v * unit;
}

/** Formats milliseconds as a `grpc-timeout` value (at most 8 digits). */
export function formatGrpcTimeout(ms: number): string {
  const v = Math.max(0, Math.ceil(ms));
  if (v < 1e8) return `${v}m`;
  const s = Math.ceil(v / 1000);
  if (s < 1e8) return `${s}S`;
  return `${Math.min(99_999_999, Math.ceil(s / 60))}M`;
}
