import { expect } from 'chai';
import { editBase, errorsOf, type Obj } from './helpers.js';

const HEX = 'a'.repeat(64);
const withFilters = (httpFilters: unknown[]) => editBase((find) => (find('Listener', 'main').httpFilters = httpFilters));
const jwt = (extra: Obj) => ({ jwtAuthn: { providers: [{ name: 'p', localJwks: { inline: '{"keys":[]}' } }], ...extra } });

describe('config validation: filters', () => {
  it('accepts a chain of each filter', () => {
    expect(
      errorsOf(
        withFilters([
          jwt({ requires: { providerName: 'p' } }),
          { apiKeys: { keys: [{ name: 'k', sha256: HEX }] } },
          { localRateLimit: { limits: [{ key: { remoteAddress: {} }, tokenBucket: { maxTokens: 10, fillInterval: '1s' } }] } },
        ]),
      ),
    ).to.deep.equal([]);
  });

  it('rejects unknown fields and two configs in one entry (decode, with paths)', () => {
    expect(errorsOf(withFilters([{ jwtAuthn: { providerz: [] } }]))[0]).to.match(/spec\.httpFilters\[0\]\.jwtAuthn\.providerz: unknown field/);
    expect(errorsOf(withFilters([{ apiKeys: {}, jwtAuthn: {} }]))[0]).to.match(/spec\.httpFilters\[0\]/);
  });

  it('reports every problem with its field path', () => {
    expect(
      errorsOf(
        withFilters([
          {},
          jwt({ requires: { anyOf: ['p', 'nope'] } }),
          { jwtAuthn: { providers: [{ name: 'r', remoteJwks: { uri: 'ftp://x' } }, { name: 'r', localJwks: { inline: '{' } }] } },
          { apiKeys: { keys: [{ name: 'k', sha256: 'plaintext-key' }] } },
          { name: 'rl', localRateLimit: { limits: [{ key: {}, fixedWindow: { requests: 0, window: '1s' } }] } },
          { name: 'rl', localRateLimit: { limits: [] } },
        ]),
      ),
    ).to.deep.equal([
      'Listener/main: spec.httpFilters[0]: set one filter config (jwtAuthn, apiKeys, rbac, localRateLimit, globalRateLimit, cors, headerMutation, compression, securityHeaders, plugin)',
      'Listener/main: spec.httpFilters[1].jwtAuthn.requires.anyOf[1]: unknown provider "nope"; providers: p',
      'Listener/main: spec.httpFilters[2]: filter name "jwtAuthn" is already used by spec.httpFilters[1]; give one of them a name',
      'Listener/main: spec.httpFilters[2].jwtAuthn.providers[0].remoteJwks.uri: must be an http:// or https:// URL',
      'Listener/main: spec.httpFilters[2].jwtAuthn.providers[1].name: duplicate provider "r"',
      'Listener/main: spec.httpFilters[2].jwtAuthn.providers[1].localJwks.inline: not JSON: ' + jsonError('{'),
      'Listener/main: spec.httpFilters[3].apiKeys.keys[0].sha256: must be 64 hex digits (the SHA-256 of the key, not the key)',
      'Listener/main: spec.httpFilters[4].localRateLimit.limits[0].key: set one of remoteAddress, header, principal, route, constant',
      'Listener/main: spec.httpFilters[4].localRateLimit.limits[0].fixedWindow.requests: must be greater than 0',
      'Listener/main: spec.httpFilters[5].name: filter name "rl" is already used by spec.httpFilters[4]; give one of them a name',
      'Listener/main: spec.httpFilters[5].localRateLimit.limits: at least one limit is required',
    ]);
  });

  it('rbac: bad CIDR, CEL that does not compile, is not boolean or names an unknown variable, rules with two fields', () => {
    const policy = (extra: Obj) => ({ permissions: [{ any: true }], principals: [{ any: true }], ...extra });
    expect(
      errorsOf(
        withFilters([
          {
            rbac: {
              action: 'RBAC_ACTION_DENY',
              policies: {
                a: policy({ principals: [{ remoteIp: { cidr: '10.0.0.0/33' } }, { or: [{ remoteIp: { cidr: 'nope' } }] }] }),
                b: policy({ condition: "request.headers['x' ==" }),
                c: policy({ condition: 'request.path' }),
                d: policy({ condition: "requests.path == '/'" }),
                e: policy({ permissions: [{ any: true, methods: ['GET'] }], principals: [] }),
                f: policy({ condition: "request.path.startsWith('/v1') && jwt.claims.exists(k, k == 'admin')" }),
              },
            },
          },
        ]),
      ).map((e) => e.replace(/does not compile: .*/, 'does not compile: …')),
    ).to.deep.equal([
      'Listener/main: spec.httpFilters[0].rbac.policies.a.principals[0].remoteIp.cidr: "10.0.0.0/33" is not a CIDR (e.g. 10.0.0.0/8, fd00::/8)',
      'Listener/main: spec.httpFilters[0].rbac.policies.a.principals[1].or[0].remoteIp.cidr: "nope" is not a CIDR (e.g. 10.0.0.0/8, fd00::/8)',
      'Listener/main: spec.httpFilters[0].rbac.policies.b.condition: does not compile: …',
      'Listener/main: spec.httpFilters[0].rbac.policies.c.condition: must be a boolean expression, not the field path',
      'Listener/main: spec.httpFilters[0].rbac.policies.d.condition: unknown variable "requests"; known: request, source, jwt',
      'Listener/main: spec.httpFilters[0].rbac.policies.e.principals: at least one is required (use {any: true})',
      'Listener/main: spec.httpFilters[0].rbac.policies.e.permissions[0]: set exactly one of any, path, methods, grpc, header, and, or, not (got any, methods)',
    ]);
  });

  it('globalRateLimit: a Redis URL is required', () => {
    const limits = [{ key: { route: {} }, fixedWindow: { requests: 1, window: '1s' } }];
    expect(errorsOf(withFilters([{ globalRateLimit: { limits } }, { name: 'g2', globalRateLimit: { limits, redis: { url: 'http://x' } } }]))).to.deep.equal([
      'Listener/main: spec.httpFilters[0].globalRateLimit.redis: required: a global limit needs redis.url (the external rate-limit service is not supported yet)',
      'Listener/main: spec.httpFilters[1].globalRateLimit.redis.url: must be a redis:// or rediss:// URL',
    ]);
  });

  it('requires exactly one kind of requirement', () => {
    expect(errorsOf(withFilters([jwt({ requires: { providerName: 'p', allOf: ['p'] } })]))).to.deep.equal([
      'Listener/main: spec.httpFilters[0].jwtAuthn.requires: set exactly one of providerName, anyOf, allOf',
    ]);
  });

  it('checks virtual host and route overrides', () => {
    const docs = editBase((find) => {
      const vh = (find('RouteConfiguration', 'main').virtualHosts as Obj[])[0]!;
      vh.filters = { jwtAuthn: { disabled: false } };
      (vh.routes as Obj[])[0]!.filters = { limits: { localRateLimit: { limits: [{ key: { header: {} }, slidingWindow: { requests: 1, window: '0s' } }] } } };
    });
    expect(errorsOf(docs)).to.deep.equal([
      'RouteConfiguration/main: spec.virtualHosts[0].filters.jwtAuthn.disabled: only disabled: true means something; remove the override instead',
      'RouteConfiguration/main: spec.virtualHosts[0].routes[0].filters.limits.localRateLimit.limits[0].key.header.name: required',
      'RouteConfiguration/main: spec.virtualHosts[0].routes[0].filters.limits.localRateLimit.limits[0].slidingWindow.window: must be greater than 0',
    ]);
  });
});

function jsonError(text: string): string {
  try {
    JSON.parse(text);
    return '';
  } catch (err) {
    return (err as Error).message;
  }
}
