import type * as Cel from '@bufbuild/cel';
import { lazyLibrary } from '../core/lazy-library.js';

type Expr = ReturnType<typeof Cel.parse>['expr'];

/** Loaded by the first config with a condition (a sidecar without rbac conditions never carries it). */
const cel = lazyLibrary<typeof Cel>('@bufbuild/cel');

/** The attribute vocabulary of rbac conditions (Envoy's names, plus `jwt.claims`). */
export interface ConditionAttributes {
  readonly request: {
    readonly headers: Readonly<Record<string, string>>;
    readonly path: string;
    readonly method: string;
    readonly host: string;
    /** gRPC with known descriptors: the first request message (proto3 JSON form, proto field names); absent otherwise. */
    readonly message?: unknown;
  };
  readonly source: { readonly address: string; readonly principal: string };
  readonly jwt: { readonly claims: Readonly<Record<string, unknown>> };
}

/** A compiled condition: true, false, or an error (a missing key, a type mismatch at run time). */
export type Condition = (attrs: ConditionAttributes) => boolean | Error;

let env: ReturnType<typeof Cel.celEnv> | undefined;

/** The one CEL environment of conditions, built on first use. */
function conditionEnv(): ReturnType<typeof Cel.celEnv> {
  if (env) return env;
  const { celEnv, mapType, CelScalar } = cel();
  return (env = celEnv({
    variables: {
      request: mapType(CelScalar.STRING, CelScalar.DYN),
      source: mapType(CelScalar.STRING, CelScalar.DYN),
      jwt: mapType(CelScalar.STRING, CelScalar.DYN),
    },
  }));
}

/** Root forms whose value is a bool whatever their operands: comparisons, logic, membership, string tests, has(), macros. */
const BOOLEAN_FUNCTIONS = new Set([
  '_==_', '_!=_', '_<_', '_<=_', '_>_', '_>=_', '_&&_', '_||_', '!_', '@in', '@not_strictly_false',
  'startsWith', 'endsWith', 'contains', 'matches', 'exists', 'all', 'exists_one',
]);

/**
 * Compiles a CEL condition at config load: a syntax error, an unknown
 * variable or an expression that is not boolean is rejected (the message says
 * where). The type check is structural (the root must be a comparison, a
 * logical operator, a membership or string test, `has()` or a bool literal),
 * since the checker of @bufbuild/cel is not public API; a value of the wrong
 * type at run time evaluates to an Error, which the caller treats as a
 * non-match (fail closed).
 */
export function compileCondition(source: string): { ok: true; condition: Condition; readsMessage: boolean } | { ok: false; error: string } {
  const { parse, plan, isCelError } = cel();
  let parsed;
  try {
    parsed = parse(source);
  } catch (err) {
    return { ok: false, error: `does not compile: ${(err as Error).message}` };
  }
  const bad = notBoolean(parsed.expr);
  if (bad) return { ok: false, error: `must be a boolean expression, not ${bad}` };
  const unknown = unknownVariable(parsed.expr);
  if (unknown) return { ok: false, error: `unknown variable "${unknown}"; known: request, source, jwt` };
  let run: (ctx: never) => unknown;
  try {
    run = plan(conditionEnv(), parsed) as (ctx: never) => unknown;
  } catch (err) {
    return { ok: false, error: `does not compile: ${(err as Error).message}` };
  }
  return {
    ok: true,
    readsMessage: readsRequestMessage(parsed.expr),
    condition: (attrs) => {
      const r = run(attrs as never);
      if (isCelError(r)) return new Error(String((r as { message?: string }).message ?? r));
      return typeof r === 'boolean' ? r : new Error('condition is not boolean');
    },
  };
}

/**
 * Whether an expression reads `request.message` (or `request['message']`):
 * only then does the rbac filter wait for the first request message, so
 * conditions that do not read it cost nothing more.
 */
function readsRequestMessage(e: Expr): boolean {
  let found = false;
  const visit = (x: Expr | undefined): void => {
    if (x === undefined || found) return;
    const k = x.exprKind;
    switch (k.case) {
      case 'selectExpr':
        // request.<field>: only .message reads it; a bare `request` anywhere else (`'message' in request`,
        // request.exists(…), request[<expression>]) might reach it, so counts as reading it.
        if (isIdent(k.value.operand, 'request')) found = k.value.field === 'message';
        else visit(k.value.operand);
        return;
      case 'callExpr': {
        const [a, b] = k.value.args;
        const cst = b?.exprKind.case === 'constExpr' ? b.exprKind.value.constantKind : undefined;
        if (k.value.function === '_[_]' && isIdent(a, 'request') && cst?.case === 'stringValue') {
          found = cst.value === 'message';
          return;
        }
        visit(k.value.target);
        for (const y of k.value.args) visit(y);
        return;
      }
      case 'identExpr':
        if (k.value.name === 'request') found = true;
        return;
      case 'listExpr':
        for (const y of k.value.elements) visit(y);
        return;
      case 'structExpr':
        for (const en of k.value.entries) {
          if (en.keyKind.case === 'mapKey') visit(en.keyKind.value);
          visit(en.value);
        }
        return;
      case 'comprehensionExpr': {
        const c = k.value;
        for (const y of [c.iterRange, c.accuInit, c.loopCondition, c.loopStep, c.result]) visit(y);
        return;
      }
      default:
        return;
    }
  };
  visit(e);
  return found;
}

function isIdent(e: Expr | undefined, name: string): boolean {
  return e?.exprKind.case === 'identExpr' && e.exprKind.value.name === name;
}

function notBoolean(e: Expr): string | undefined {
  const k = e.exprKind;
  switch (k.case) {
    case 'constExpr':
      return k.value.constantKind.case === 'boolValue' ? undefined : `a ${k.value.constantKind.case ?? 'null'} literal`;
    case 'callExpr':
      if (k.value.function === '_?_:_') return notBoolean(k.value.args[1]!) ?? notBoolean(k.value.args[2]!);
      return BOOLEAN_FUNCTIONS.has(k.value.function) ? undefined : `a call of ${k.value.function}`;
    case 'selectExpr':
      return k.value.testOnly ? undefined : `the field ${k.value.field}`;
    case 'comprehensionExpr':
      return undefined; // exists / all / exists_one; map() and filter() are lists and caught by the result check
    case 'identExpr':
      return `the variable ${k.value.name}`;
    default:
      return `a ${k.case ?? 'value'}`;
  }
}

/** The first identifier that is neither an attribute root nor a comprehension variable. */
function unknownVariable(e: Expr, bound: ReadonlySet<string> = new Set()): string | undefined {
  const k = e.exprKind;
  switch (k.case) {
    case 'identExpr':
      return ['request', 'source', 'jwt'].includes(k.value.name) || bound.has(k.value.name) ? undefined : k.value.name;
    case 'selectExpr':
      return k.value.operand ? unknownVariable(k.value.operand, bound) : undefined;
    case 'callExpr':
      for (const a of [...(k.value.target ? [k.value.target] : []), ...k.value.args]) {
        const u = unknownVariable(a, bound);
        if (u) return u;
      }
      return undefined;
    case 'listExpr':
      for (const a of k.value.elements) {
        const u = unknownVariable(a, bound);
        if (u) return u;
      }
      return undefined;
    case 'structExpr':
      for (const en of k.value.entries) {
        for (const x of [en.keyKind.case === 'mapKey' ? en.keyKind.value : undefined, en.value]) {
          const u = x ? unknownVariable(x, bound) : undefined;
          if (u) return u;
        }
      }
      return undefined;
    case 'comprehensionExpr': {
      const c = k.value;
      const inner = new Set([...bound, c.iterVar, c.accuVar, ...(c.iterVar2 ? [c.iterVar2] : [])]);
      for (const [x, b] of [[c.iterRange, bound], [c.accuInit, bound], [c.loopCondition, inner], [c.loopStep, inner], [c.result, inner]] as const) {
        const u = x ? unknownVariable(x, b) : undefined;
        if (u) return u;
      }
      return undefined;
    }
    default:
      return undefined;
  }
}
