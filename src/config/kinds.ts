import type { DescMessage } from '@bufbuild/protobuf';
import { ListenerSchema } from '../gen/outrigger/config/v1/listener_pb.js';
import { RouteConfigurationSchema } from '../gen/outrigger/config/v1/route_pb.js';
import { ClusterLoadAssignmentSchema, ClusterSchema } from '../gen/outrigger/config/v1/cluster_pb.js';

export const API_VERSION = 'outrigger.io/v1';

/**
 * Resource kinds, in the order they must be applied so that nothing refers to a
 * resource that is not there yet (xDS warming order: clusters → endpoints →
 * listeners → routes).
 */
export const KINDS = ['Cluster', 'ClusterLoadAssignment', 'Listener', 'RouteConfiguration'] as const;
export type Kind = (typeof KINDS)[number];

export const KIND_SCHEMAS: Readonly<Record<Kind, DescMessage>> = {
  Cluster: ClusterSchema,
  ClusterLoadAssignment: ClusterLoadAssignmentSchema,
  Listener: ListenerSchema,
  RouteConfiguration: RouteConfigurationSchema,
};

export function isKind(s: unknown): s is Kind {
  return typeof s === 'string' && (KINDS as readonly string[]).includes(s);
}

/** `type.googleapis.com/outrigger.config.v1.<Kind>` */
export function typeUrlOf(kind: Kind): string {
  return `type.googleapis.com/${KIND_SCHEMAS[kind].typeName}`;
}
