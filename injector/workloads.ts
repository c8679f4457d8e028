import { applyPatch, type Operation } from 'rfc6902';
import { inject, type SkipReason } from './inject.js';
import type { MeshConfig } from './mesh-config.js';
import type { Pod } from './pod-types.js';

/** Where each workload kind keeps its pod template (JSON Pointer segments). */
const TEMPLATE_PATHS: Record<string, string[]> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

export type ManifestObject = { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string }; [k: string]: unknown };

export interface ManifestResult {
  /** "Kind/name" for messages. */
  ref: string;
  /** Operations against the whole object (template paths prefixed); empty when unchanged. */
  patch: Operation[];
  /** Why the object was not changed: a skip reason, or not_a_workload for other kinds. */
  skipReason?: SkipReason | 'not_a_workload';
  warnings: string[];
  /** The object after the patch (the same object when unchanged). */
  object: ManifestObject;
}

/**
 * Offline injection of one manifest object, like `istioctl kube-inject`: the
 * pod template of a workload goes through the same pure inject() as the
 * webhook, and its patch is re-rooted at the template's path. The input is not
 * mutated.
 */
export function injectManifest(obj: ManifestObject, mesh: MeshConfig, k8sVersion: string | undefined): ManifestResult {
  const ref = `${obj.kind ?? '?'}/${obj.metadata?.name ?? '?'}`;
  const path = obj.kind ? TEMPLATE_PATHS[obj.kind] : undefined;
  if (path === undefined) return { ref, patch: [], skipReason: 'not_a_workload', warnings: [], object: obj };
  let template: unknown = obj;
  for (const seg of path) template = (template as Record<string, unknown> | undefined)?.[seg];
  if (template === null || typeof template !== 'object') throw new Error(`${ref}: no pod template at /${path.join('/')}`);
  const r = inject(template as Pod, mesh, k8sVersion, { namespace: obj.metadata?.namespace });
  if (r.skipReason || r.patch.length === 0) return { ref, patch: [], skipReason: r.skipReason, warnings: r.warnings, object: obj };
  const prefix = path.map((s) => `/${s}`).join('');
  const patch = r.patch.map((op) => ({ ...op, path: prefix + op.path }) as Operation);
  const object = structuredClone(obj);
  const errors = applyPatch(object, patch).filter((e) => e !== null);
  if (errors.length) throw new Error(`${ref}: patch did not apply: ${errors[0]!.message}`);
  return { ref, patch, warnings: r.warnings, object };
}
