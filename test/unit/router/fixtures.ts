import { fromJson, type JsonObject } from '@bufbuild/protobuf';
import { RouteConfigurationSchema, type RouteConfiguration } from '../../../src/gen/outrigger/config/v1/route_pb.js';
import { RouteTable, type RouteMatchResult, type RouteRequest } from '../../../src/proxy/router/index.js';

/** A RouteConfiguration from its proto3 JSON (the form config documents use). */
export function routeConfig(json: JsonObject): RouteConfiguration {
  return fromJson(RouteConfigurationSchema, json);
}

/** One "*" virtual host named "vh" holding `routes` (proto3 JSON). */
export function table(routes: JsonObject[], domains: string[] = ['*']): RouteTable {
  return RouteTable.compile(routeConfig({ name: 'rc', virtualHosts: [{ name: 'vh', domains, routes }] }));
}

/** A route sending to cluster `name`, so a match's cluster tells which route won. */
export function r(name: string, match: JsonObject): JsonObject {
  return { name, match, route: { cluster: name } };
}

export function req(path: string, extra: Partial<RouteRequest> = {}): RouteRequest {
  return { host: 'example.com', method: 'GET', path, headers: {}, isGrpc: false, ...extra };
}

/** Name of the winning route, or undefined. */
export function winner(t: RouteTable, request: RouteRequest | string): string | undefined {
  return match(t, request)?.route.name;
}

export function match(t: RouteTable, request: RouteRequest | string): RouteMatchResult | undefined {
  return t.match(typeof request === 'string' ? req(request) : request);
}

/** Header matchers the property tests pick from (exact, prefix, regex, presence, inverted, a comma in the value). */
export const HEADER_MATCH_SAMPLES: readonly { [k: string]: string | boolean }[] = [
  { name: 'x-h', exact: '1' },
  { name: 'x-h', prefix: '1' },
  { name: 'x-h', regex: '[12]' },
  { name: 'x-h', present: true },
  { name: 'x-h', present: false },
  { name: 'x-h', exact: '1', invert: true },
  { name: 'x-h', exact: '1,2' },
];
