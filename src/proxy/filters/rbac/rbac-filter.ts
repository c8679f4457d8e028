import { compileCondition, type Condition, type ConditionAttributes } from '../../../config/cel-condition.js';
import { RbacAction, type Rbac } from '../../../gen/outrigger/filters/rbac/v1/rbac_pb.js';
import type { Downstream } from '../../downstream/downstream.js';
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

/** The rbac filter factory: permissions, principals and CEL conditions are compiled here, once per config version. */
export function rbacFactory(deps: RbacDeps): FilterFactory<Rbac> {
  return {
    name: 'rbac',
    compile(config, name) {
      const policies: CompiledPolicy[] = [];
      for (const [pname, p] of Object.entries(config.policies)) {
        const at = `policies.${pname}`;
        if (p.permissions.length === 0) throw new Error(`${at}.permissions: at least one is required (use {any: true})`);
        if (p.principals.length === 0) throw new Error(`${at}.principals: at least one is required (use {any: true})`);
        let condition: Condition | undefined;
        if (p.condition !== '') {
          const c = compileCondition(p.condition);
          if (!c.ok) throw new Error(`${at}.condition: ${c.error}`);
          condition = c.condition;
        }
        policies.push({
          name: pname,
          permissions: p.permissions.map((x, i) => compilePermission(x, `${at}.permissions[${i}]`)),
          principals: p.principals.map((x, i) => compilePrincipal(x, `${at}.principals[${i}]`)),
          condition,
        });
      }
      return rbacFilter(name, config.action, policies, deps.audit);
    },
  };
}

function rbacFilter(name: string, action: RbacAction, policies: readonly CompiledPolicy[], audit: AuditLog): HttpFilter {
  const deny = action === RbacAction.DENY;
  const shadow = action === RbacAction.LOG;
  const denied: NonNullable<FilterVerdict> = { code: 'access_denied' };
  return {
    name,
    onRequestHeaders(ds) {
      const q = ds.target.indexOf('?');
      const path = q < 0 ? ds.target : ds.target.slice(0, q);
      let attrs: ConditionAttributes | undefined;
      let matched: string | undefined;
      for (const p of policies) {
        if (!p.permissions.some((m) => m(ds, path)) || !p.principals.some((m) => m(ds, path))) continue;
        if (p.condition) {
          const r = p.condition((attrs ??= attributesOf(ds, path)));
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
    },
  };
}

/** Envoy's attribute names over this exchange (lower-case header names; repeated headers joined with ","). */
function attributesOf(ds: Downstream, path: string): ConditionAttributes {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(ds.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(',') : v;
  return {
    request: { headers, path, method: ds.method, host: ds.authority },
    source: { address: ds.conn.clientAddress, principal: ds.conn.peerPrincipal ?? ds.auth?.principal ?? '' },
    jwt: { claims: ds.auth?.claims ?? {} },
  };
}
