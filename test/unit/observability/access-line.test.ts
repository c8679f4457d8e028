import { expect } from 'chai';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../../src/observability/logger.js';
import { writeAccess, type AccessRecord } from '../../../src/observability/access-line.js';

/**
 * The access line is formatted without pino's serializer (access-line.ts):
 * it must be byte for byte what pino writes for the same record, or log
 * pipelines that parse it would see two formats.
 */
describe('access line', () => {
  const base: AccessRecord = {
    method: 'POST',
    authority: 'shop.test:8080',
    path: '/outrigger.examples.bookstore.v1.BookstoreService/GetShelf',
    protocol: 'grpc',
    status: 200,
    grpc_status: '0',
    duration_ms: 1.234,
    bytes_in: 12,
    bytes_out: 345,
    upstream: '127.0.0.1:9000',
    route: 'vh/0',
    cluster: 'outbound|8080||cart.shop.svc.cluster.local',
    request_id: '0b7c6f5e-1d2a-4c3b-9e8f-7a6b5c4d3e2f',
    flags: undefined,
    attempts: undefined,
    headers: undefined,
    source_principal: undefined,
    upstream_principal: undefined,
    trace_id: undefined,
    span_id: undefined,
  };
  const cases: [string, AccessRecord][] = [
    ['a plain gRPC record', base],
    [
      'every optional field, and strings that need escaping',
      {
        ...base,
        method: 'GET',
        path: '/a "quoted"\\path\n\ttab\u0001é😀',
        grpc_status: undefined,
        status: 503,
        flags: 'UO,URX',
        attempts: 3,
        headers: { 'user-agent': 'curl/8 "x"', authorization: '[redacted]', 'x-odd\u0002': 'ü\u007f' },
        source_principal: 'spiffe://cluster.local/ns/shop/sa/web',
        upstream_principal: 'spiffe://cluster.local/ns/shop/sa/cart',
        trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
        span_id: '00f067aa0ba902b7',
      },
    ],
    ['latin1 bytes as the wire decodes them, and an empty authority', { ...base, authority: '', path: '/x\u00ffy\u00c3\u00a9', duration_ms: 0, bytes_out: 0 }],
    ['an empty headers object', { ...base, headers: {} }],
  ];

  let dir = '';
  before(() => (dir = mkdtempSync(join(tmpdir(), 'access-line-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** What a logger made by createLogger writes, once through pino and once through the fast path. */
  const both = (r: AccessRecord, child: boolean): [string, string] => {
    const file = join(dir, `${Math.random()}.log`);
    const fd = openSync(file, 'w');
    const root = createLogger({ fd, level: 'info' });
    const logger = child ? root.child({ worker: 4242 }) : root;
    logger.info({ listener: 'ingress', ...r }, 'access');
    writeAccess(logger, 'ingress', r, () => ({}));
    root.flush();
    closeSync(fd);
    const lines = readFileSync(file, 'utf8').split('\n');
    expect(lines).to.have.length(3);
    const untimed = (l: string): string => l.replace(/"time":"[^"]+"/, '"time":"T"');
    return [untimed(lines[0]!), untimed(lines[1]!)];
  };

  for (const [name, r] of cases) {
    it(`${name}: the same bytes as pino`, () => {
      const [viaPino, fast] = both(r, false);
      expect(fast).to.equal(viaPino);
      expect(JSON.parse(fast)).to.include({ msg: 'access', listener: 'ingress', level: 'info' });
    });
  }

  it("a child logger's bindings come first, as pino writes them", () => {
    const [viaPino, fast] = both(cases[1]![1], true);
    expect(fast).to.equal(viaPino);
    expect(JSON.parse(fast).worker).to.equal(4242);
  });

  it('an unmarked logger (a test logger) is written through pino; a silent level writes nothing', () => {
    const seen: object[] = [];
    const fake = { info: (o: object) => seen.push(o) } as unknown as Parameters<typeof writeAccess>[0];
    writeAccess(fake, 'l', base, () => ({ listener: 'l', ...base }));
    expect(seen).to.have.length(1);
    const file = join(dir, 'silent.log');
    const fd = openSync(file, 'w');
    const silent = createLogger({ fd, level: 'warn' });
    writeAccess(silent, 'l', base, () => ({}));
    silent.flush();
    closeSync(fd);
    expect(readFileSync(file, 'utf8')).to.equal('');
  });
});
