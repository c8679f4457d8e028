/** The router of the data path: RouteConfiguration → RouteTable, request → route. */
export { requestHash, type HashPart } from './hash-policy.js';
export { RouteTable } from './route-table.js';
export { validateRouteTemplate } from './route-template.js';
export {
  EMPTY_PARAMS,
  RouteCompileError,
  type CompiledRoute,
  type MatchKind,
  type RouteActionCompiled,
  type RouteMatchResult,
  type RouteRequest,
} from './types.js';
