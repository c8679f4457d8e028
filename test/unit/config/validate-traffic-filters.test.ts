import { expect } from 'chai';
import { editBase, errorsOf } from './helpers.js';

const withFilters = (httpFilters: unknown[]) => editBase((find) => (find('Listener', 'main').httpFilters = httpFilters));
const AT = 'Listener/main: spec.httpFilters[0]';

describe('config validation: traffic filters (cors, compression, securityHeaders)', () => {
  it('accepts each with its documented example shape', () => {
    expect(
      errorsOf(
        withFilters([
          { cors: { allowOrigins: ['https://app.example.com', 'https://*.example.com'], allowCredentials: true, maxAge: '600s', preset: 'PRESET_GRPC_WEB_CONNECT' } },
          { compression: { encodings: ['ENCODING_BR', 'ENCODING_GZIP'], minContentLength: 512, contentTypes: ['text/*', 'application/json', 'application/+json'], requestDecompression: { enabled: true, maxBytes: 1048576 } } },
          { securityHeaders: { frameOptions: 'SAMEORIGIN', xssProtection: '', override: true } },
          { headerMutation: { request: { set: [{ name: 'x-client', value: '%DOWNSTREAM_REMOTE_ADDRESS%' }] } } },
        ]),
      ),
    ).to.deep.equal([]);
  });

  it('cors: credentials with a "*" origin, bad patterns and regexes, no origin at all', () => {
    expect(errorsOf(withFilters([{ cors: { allowOrigins: ['*'], allowCredentials: true } }]))).to.deep.equal([
      `${AT}.cors.allowCredentials: not with a "*" origin: browsers refuse credentials for a wildcard; list the origins`,
    ]);
    expect(errorsOf(withFilters([{ cors: { allowOrigins: ['https://a.*.com', 'https://x.com/path'], allowOriginRegexes: ['('] } }]))).to.deep.equal([
      `${AT}.cors.allowOrigins[0]: a pattern is scheme://*.domain (one leading wildcard label), e.g. https://*.example.com`,
      `${AT}.cors.allowOrigins[1]: an origin is scheme://host[:port], without a path`,
      `${AT}.cors.allowOriginRegexes[0]: Invalid regular expression: /(/: Unterminated group`,
    ]);
    expect(errorsOf(withFilters([{ cors: {} }]))).to.deep.equal([`${AT}.cors.allowOrigins: list at least one origin (or allowOriginRegexes)`]);
  });

  it('cache: redis url, maxBodyBytes 0, gRPC method patterns, TTLs, key prefix, descriptors (field paths)', () => {
    expect(errorsOf(withFilters([{ cache: { memory: {} } }]))).to.deep.equal([]);
    expect(
      errorsOf(
        withFilters([
          {
            cache: {
              redis: { url: 'http://x' },
              maxBodyBytes: 0,
              defaultTtl: '-1s',
              keyPrefix: 'a b',
              descriptorBin: Buffer.from('not a descriptor set').toString('base64'),
              grpcMethods: [{ method: 'pkg.Svc/Get' }, { method: '/pkg.Svc/*', ttl: '-2s' }, { method: '/pkg.Svc/*' }, { method: '/pkg.Svc/Get/x' }],
            },
          },
        ]),
      ),
    ).to.deep.equal([
      `${AT}.cache.redis.url: a redis://host:port or rediss://host:port URL is required`,
      `${AT}.cache.maxBodyBytes: must be at least 1 (omit it for the 1 MiB default)`,
      `${AT}.cache.defaultTtl: must not be negative`,
      `${AT}.cache.keyPrefix: must not contain whitespace or glob characters (* ? [ ])`,
      `${AT}.cache.grpcMethods[0].method: "pkg.Svc/Get" is not /package.Service/Method or /package.Service/*`,
      `${AT}.cache.grpcMethods[1].ttl: must not be negative`,
      `${AT}.cache.grpcMethods[2].method: "/pkg.Svc/*" is listed twice`,
      `${AT}.cache.grpcMethods[3].method: "/pkg.Svc/Get/x" is not /package.Service/Method or /package.Service/*`,
      `${AT}.cache.descriptorBin: not a usable FileDescriptorSet: ${errorsOf(withFilters([{ cache: { descriptorBin: Buffer.from('not a descriptor set').toString('base64') } }]))[0]!.split('FileDescriptorSet: ')[1]}`,
    ]);
    expect(errorsOf(withFilters([{ cache: { memory: { maxBytes: 100 }, maxBodyBytes: 1000 } }]))).to.deep.equal([
      `${AT}.cache.maxBodyBytes: is larger than memory.maxBytes (100): no such response could be stored`,
    ]);
  });

  it('plugin: a module is required; its config is left to the module (checked when the config is applied)', () => {
    expect(errorsOf(withFilters([{ plugin: { module: '', config: { anything: 1 } } }]))).to.deep.equal([
      `${AT}.plugin.module: required: a path relative to the config file, or a package name`,
    ]);
    expect(errorsOf(withFilters([{ plugin: { module: './x.mjs', config: { anything: 1 } } }]))).to.deep.equal([]);
  });

  it('compression and securityHeaders: bounds and shapes', () => {
    expect(errorsOf(withFilters([{ compression: { gzipLevel: 12, brotliQuality: 12, encodings: ['ENCODING_UNSPECIFIED'], contentTypes: ['json'] } }]))).to.deep.equal([
      `${AT}.compression.encodings[0]: ENCODING_GZIP, ENCODING_BR or ENCODING_ZSTD`,
      `${AT}.compression.gzipLevel: must be 1..9`,
      `${AT}.compression.brotliQuality: must be 0..11`,
      `${AT}.compression.contentTypes[0]: "json" is not a media type (type/subtype, type/*, type/+suffix)`,
    ]);
    expect(errorsOf(withFilters([{ securityHeaders: { strictTransportSecurity: 'includeSubDomains' } }]))).to.deep.equal([
      `${AT}.securityHeaders.strictTransportSecurity: needs max-age=<seconds> (RFC 6797)`,
    ]);
  });
});
