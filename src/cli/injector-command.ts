import { readFile } from 'node:fs/promises';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { systemClock } from '../core/clock.js';
import { createLogger } from '../observability/logger.js';
import { defaultMeshConfig, parseMeshConfig, type MeshConfig } from '../../injector/mesh-config.js';
import { detectKubernetesVersion } from '../../injector/kube-version.js';
import { WebhookServer } from '../../injector/webhook-server.js';
import { parseFlags, UsageError } from './flags.js';
import type { Command } from './command.js';

const USAGE = `usage: outrigger injector --tls-cert FILE --tls-key FILE [--port 15017] [--mesh-config FILE]

The mutating admission webhook that injects the Outrigger sidecar into pods
(see docs/injector.md). Serves HTTPS: POST /inject (AdmissionReview v1),
GET /healthz, GET /metrics. The certificate files are reloaded when they change.

flags:
  --tls-cert FILE            serving certificate (PEM, may include the chain)
  --tls-key FILE             its private key (PEM)
  --port N                   HTTPS port (default 15017; 0 picks a free port)
  --host ADDR                bind address (default 0.0.0.0)
  --mesh-config FILE         mesh config (YAML/JSON); every field has a default
  --kubernetes-version V     e.g. 1.30; default: the mesh config's, else asked
                             of the API server at startup when in a cluster`;

export const injectorCommand: Command = {
  summary: 'run the sidecar injector webhook',
  async run(args) {
    const values = parseFlags(
      args,
      {
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        port: { type: 'string', default: '15017' },
        host: { type: 'string', default: '0.0.0.0' },
        'mesh-config': { type: 'string' },
        'kubernetes-version': { type: 'string' },
      },
      USAGE,
    )?.values;
    if (!values) return 0;
    if (!values['tls-cert'] || !values['tls-key']) {
      throw new UsageError('--tls-cert and --tls-key are required', USAGE);
    }
    const logger = createLogger();
    let mesh: MeshConfig;
    try {
      mesh = values['mesh-config'] ? parseMeshConfig(await readFile(values['mesh-config'], 'utf8')) : defaultMeshConfig();
    } catch (err) {
      process.stderr.write(`outrigger injector: ${(err as Error).message}\n`);
      return 1;
    }
    let version = values['kubernetes-version'] || mesh.kubernetesVersion || undefined;
    if (!version) {
      version = await detectKubernetesVersion();
      if (version) logger.info({ version }, 'kubernetes version from the API server');
      else logger.warn('kubernetes version unknown: native sidecars only where the mesh config enables them');
    }
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix: 'outrigger_' }); // → outrigger_process_*, outrigger_nodejs_*
    let server: WebhookServer;
    let port: number;
    try {
      server = await WebhookServer.create({
        certFile: values['tls-cert'],
        keyFile: values['tls-key'],
        mesh,
        kubernetesVersion: version,
        registry,
        logger,
        clock: systemClock(),
      });
      port = await server.listen(Number(values.port), values.host);
    } catch (err) {
      process.stderr.write(`outrigger injector: ${(err as Error).message}\n`);
      return 1;
    }
    process.stdout.write(JSON.stringify({ msg: 'injector ready', port, kubernetesVersion: version ?? null }) + '\n');
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
    });
    await server.close();
    return 0;
  },
};
