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

  it('cache and plugin: the shapes exist, the filters are not built yet', () => {
    expect(errorsOf(withFilters([{ cache: { memory: {} } }]))).to.deep.equal([`${AT}.cache: not supported yet by this sidecar`]);
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
