/**
 * The NATS announcement protocol (docs/discovery.md): what `outrigger
 * announce` sends and the NATS provider reads. JSON over plain NATS core
 * subjects, so any client in any language can take part.
 *
 * - `outrigger.discovery.<service>.announce`: heartbeats every TTL/3 and one
 *   goodbye on shutdown (both published on the same subject);
 * - `outrigger.discovery.<service>.query`: a request; every member answers on
 *   the reply subject with its current heartbeat (scatter-gather: a watcher
 *   listens on its inbox for all of them).
 */
export const SUBJECT_PREFIX = 'outrigger.discovery';
/** A service name usable as one subject token (no dots, wildcards or spaces). */
export const SERVICE_NAME_RE = /^[A-Za-z0-9_-]{1,128}$/;

export const announceSubject = (service: string): string => `${SUBJECT_PREFIX}.${service}.announce`;
export const querySubject = (service: string): string => `${SUBJECT_PREFIX}.${service}.query`;

export interface Heartbeat {
  readonly kind: 'heartbeat';
  readonly service: string;
  /** Unique per announcing process (a restart is a new member). */
  readonly id: string;
  readonly address: string;
  readonly port: number;
  /** Seconds: the member is dropped this long after its last heartbeat. */
  readonly ttl: number;
  readonly weight?: number;
  readonly zone?: string;
  readonly labels?: Readonly<Record<string, string>>;
}

export interface Goodbye {
  readonly kind: 'goodbye';
  readonly service: string;
  readonly id: string;
}

export type Announcement = Heartbeat | Goodbye;

/** Parses one message; a string says why it is not a valid announcement for `service`. */
export function parseAnnouncement(data: Uint8Array, service: string): Announcement | string {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(data));
  } catch {
    return 'not JSON';
  }
  if (typeof v !== 'object' || v === null) return 'not an object';
  const m = v as Record<string, unknown>;
  if (m.service !== service) return `service ${JSON.stringify(m.service)} is not ${service}`;
  if (typeof m.id !== 'string' || m.id === '') return 'id: required';
  if (m.kind === 'goodbye') return { kind: 'goodbye', service, id: m.id };
  if (m.kind !== 'heartbeat') return `kind: "heartbeat" or "goodbye", got ${JSON.stringify(m.kind)}`;
  if (typeof m.address !== 'string' || m.address === '') return 'address: required';
  if (typeof m.port !== 'number' || !Number.isInteger(m.port) || m.port < 1 || m.port > 65535) return 'port: 1..65535';
  if (typeof m.ttl !== 'number' || !(m.ttl > 0) || m.ttl > 86400) return 'ttl: seconds, > 0';
  if (m.weight !== undefined && (typeof m.weight !== 'number' || !Number.isInteger(m.weight) || m.weight < 1)) return 'weight: an integer >= 1';
  if (m.zone !== undefined && typeof m.zone !== 'string') return 'zone: a string';
  let labels: Record<string, string> | undefined;
  if (m.labels !== undefined) {
    if (typeof m.labels !== 'object' || m.labels === null || Array.isArray(m.labels)) return 'labels: an object of strings';
    labels = {};
    for (const [k, val] of Object.entries(m.labels)) {
      if (typeof val !== 'string') return `labels.${k}: a string`;
      labels[k] = val;
    }
  }
  return {
    kind: 'heartbeat',
    service,
    id: m.id,
    address: m.address,
    port: m.port,
    ttl: m.ttl,
    ...(m.weight !== undefined ? { weight: m.weight as number } : {}),
    ...(m.zone ? { zone: m.zone as string } : {}),
    ...(labels ? { labels } : {}),
  };
}

export function encode(a: Announcement): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(a));
}

/** NATS servers by NATS' conventions: `--nats-servers a,b`, else NATS_URL (comma-separated), else nats://127.0.0.1:4222. */
export function natsServers(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  const raw = flag || env.NATS_URL || 'nats://127.0.0.1:4222';
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}
