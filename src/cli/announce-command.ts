import { isIP } from 'node:net';
import { systemClock } from '../core/clock.js';
import { parseDurationFlag } from '../core/duration.js';
import { createLogger } from '../observability/logger.js';
import { Announcer } from '../discovery/nats/announcer.js';
import { natsServers, SERVICE_NAME_RE } from '../discovery/nats/announce-protocol.js';
import { parseFlags, UsageError } from './flags.js';
import type { Command } from './command.js';

const USAGE = `usage: outrigger announce --service NAME --address HOST:PORT [--nats-servers URL,…] [--ttl 10s]
       [--label k=v]… [--weight N] [--zone Z]

Announces one member of a service over NATS until SIGTERM or SIGINT, then
says goodbye so watchers drop it at once (docs/discovery.md, "NATS
announcements"). Heartbeats go out every TTL/3; a member not heard from for
a TTL is dropped. Clusters of type DISCOVERY_TYPE_NATS route to the members.

flags:
  --service NAME        the service (letters, digits, "_" and "-")
  --address HOST:PORT   where this member serves ([v6]:port for IPv6)
  --nats-servers URLS   comma-separated NATS servers (else NATS_URL, else nats://127.0.0.1:4222)
  --ttl D               time to live after the last heartbeat (default 10s)
  --label k=v           a label (repeatable); route endpoint selectors match them
  --weight N            relative weight (default 1)
  --zone Z              the member's zone (locality)`;

export const announceCommand: Command = {
  summary: 'announce a service member over NATS (heartbeats, goodbye on exit)',
  async run(args) {
    const values = parseFlags(
      args,
      {
        service: { type: 'string' },
        address: { type: 'string' },
        'nats-servers': { type: 'string' },
        ttl: { type: 'string', default: '10s' },
        label: { type: 'string', multiple: true },
        weight: { type: 'string' },
        zone: { type: 'string' },
      },
      USAGE,
    )?.values;
    if (!values) return 0;
    const service = values.service;
    if (!service || !SERVICE_NAME_RE.test(service)) throw new UsageError('--service: required; letters, digits, "_" and "-"', USAGE);
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(values.address ?? '');
    const host = m ? (m[1] ?? m[2])! : '';
    const port = m ? Number(m[3]) : 0;
    if (!m || port < 1 || port > 65535 || (m[1] !== undefined && isIP(host) !== 6)) throw new UsageError(`--address: HOST:PORT, got "${values.address ?? ''}"`, USAGE);
    const ttlMs = parseDurationFlag(values.ttl!);
    if (!(ttlMs >= 1000)) throw new UsageError('--ttl: at least 1s', USAGE);
    const labels: Record<string, string> = {};
    for (const l of (values.label as string[] | undefined) ?? []) {
      const eq = l.indexOf('=');
      if (eq <= 0) throw new UsageError(`--label: k=v, got "${l}"`, USAGE);
      labels[l.slice(0, eq)] = l.slice(eq + 1);
    }
    const weight = values.weight === undefined ? undefined : Number(values.weight);
    if (weight !== undefined && !(Number.isInteger(weight) && weight >= 1)) throw new UsageError('--weight: an integer >= 1', USAGE);
    const logger = createLogger();
    const announcer = new Announcer({
      servers: natsServers(values['nats-servers']),
      service,
      address: host,
      port,
      ttlSeconds: ttlMs / 1000,
      labels,
      weight,
      zone: values.zone,
      clock: systemClock(),
      logger,
    });
    await announcer.start();
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
    });
    await announcer.stop();
    return 0;
  },
};
