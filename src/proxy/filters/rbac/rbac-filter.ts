import { compileCondition, type Condition, type ConditionAttributes } from '../../../config/cel-condition.js';
import { RbacAction, type Rbac } from '../../../gen/outrigger/filters/rbac/v1/rbac_pb.js';
import { fromBinary, toJson, type DescMethod } from '@bufbuild/protobuf';
import type { Downstream } from '../../downstream/downstream.js';
import { readFirstMessage } from './first-message.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { FilterFactory, FilterVerdict, HttpFilter } from '../filter.js';
import { compilePermission, compilePrincipal, type Matcher } from './matchers.js';

export interface RbacDeps {
  readonly audit: AuditLog;
}

interface CompiledPolicy {
  readonly name: string;
  readonly permissions: readonly Matcher[];
  readonly principals: readonly Matcher[];
  readonly condition: Condition | undefined;
}

/** Default `maxRequestMessageBytes`: the first request message buffered for `request.message`. */
export const DEFAULT_MAX_REQUEST_MESSAGE_BYTES = 64 * 1024;

/** The rbac filter factory: permissions, principals and CEL conditions are compiled here, once per config version. */
export function rbacFactory(deps: RbacDeps): FilterFactory<Rbac> {
  return {
    name: 'rbac',
    compile(config, name) {
      const policies: CompiledPolicy[] = [];
      let readsMessage = false;
      for (const [pname, p] of Object.entries(config.policies)) {
        const at = `policies.${pname}`;
        if (p.permissions.length === 0) throw new Error(`${at}.permissions: at least one is required (use {any: true})`);
        if (p.principals.length === 0) throw new Error(`${at}.principals: at least one is required (use {any: true})`);
        let condition: Condition | undefined;
        if (p.condition !== '') {
          const c = compileCondition(p.condition);
          if (!c.ok) throw new Error(`${at}.condition: ${c.error}`);
          condition = c.condition;
          readsMessage ||= c.readsMessage;
        }
        policies.push({
          name: pname,
          permissions: p.permissions.map((x, i) => compilePermission(x, `${at}.permissions[${i}]`)),
          principals: p.principals.map((x, i) => compilePrincipal(x, `${at}.principals[${i}]`)),
          condition,
        });
      }
      const maxMessage = readsMessage ? config.maxRequestMessageBytes || DEFAULT_MAX_REQUEST_MESSAGE_BYTES : 0;
      return rbacFilter(name, config.action, policies, deps.audit, maxMessage);
    },
  };
}

/**
 * `maxMessage` > 0: some condition reads `request.message`; gRPC requests with
 * known descriptors then wait for their first message (decoded once, for
 * every policy). Other requests, and every request of a filter whose
 * conditions do not read it, are decided at once from the headers.
 */
function rbacFilter(name: string, action: RbacAction, policies: readonly CompiledPolicy[], audit: AuditLog, maxMessage: number): HttpFilter {
  const deny = action === RbacAction.DENY;
  const shadow = action === RbacAction.LOG;
  const denied: NonNullable<FilterVerdict> = { code: 'access_denied' };
  const decide = (ds: Downstream, path: string, message: unknown): FilterVerdict => {
    let attrs: ConditionAttributes | undefined;
    let matched: string | undefined;
    for (const p of policies) {
      if (!p.permissions.some((m) => m(ds, path)) || !p.principals.some((m) => m(ds, path))) continue;
      if (p.condition) {
        const r = p.condition((attrs ??= attributesOf(ds, path, message)));
        // A condition that cannot be evaluated fails closed: no grant under ALLOW, a match under DENY.
        if (r instanceof Error ? !deny : !r) continue;
      }
      matched = p.name;
      break;
    }
    if (shadow) {
      if (matched !== undefined) audit.record(ds, name, { outcome: 'logged', policy: matched });
      return undefined;
    }
    if (deny) {
      if (matched === undefined) return undefined;
      audit.record(ds, name, { outcome: 'denied', policy: matched });
      return denied;
    }
    if (matched !== undefined) return undefined;
    audit.record(ds, name, { outcome: 'denied', reason: 'no_policy_matched' });
    return denied;
  };
  return {
    name,
    onRequestHeaders(ds) {
      const q = ds.target.indexOf('?');
      const path = q < 0 ? ds.target : ds.target.slice(0, q);
      const method = maxMessage > 0 && ds.grpc ? ds.rpc : undefined;
      if (method === undefined) return decide(ds, path, undefined);
      return readFirstMessage(ds.requestBody, maxMessage, (b) => ds.replaceRequestBody(b)).then((m): FilterVerdict => {
        if (m.kind === 'too_large') {
          audit.record(ds, name, { outcome: 'denied', reason: 'message_too_large' });
          return { code: 'request_too_large', detail: `the first request message (${m.length} bytes) is over the rbac filter's maxRequestMessageBytes (${maxMessage})` };
        }
        return decide(ds, path, m.kind === 'message' ? decodeMessage(method, m.bytes) : undefined);
      });
    },
  };
}

/** The message in its proto3 JSON form with proto field names (int64 as strings, enums by name); undefined if it does not decode. */
function decodeMessage(method: DescMethod, bytes: Buffer): unknown {
  try {
    return toJson(method.input, fromBinary(method.input, bytes), { useProtoFieldName: true });
  } catch {
    return undefined;
  }
}

/** Envoy's attribute names over this exchange (lower-case header names; repeated headers joined with ","). */
function attributesOf(ds: Downstream, path: string, message: unknown): ConditionAttributes {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(ds.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(',') : v;
  return {
    request: message === undefined ? { headers, path, method: ds.method, host: ds.authority } : { headers, path, method: ds.method, host: ds.authority, message },
    source: { address: ds.conn.clientAddress, principal: ds.conn.peerPrincipal ?? ds.auth?.principal ?? '' },
    jwt: { claims: ds.auth?.claims ?? {} },
  };
}
