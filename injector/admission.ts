import { inject, type InjectResult, type SkipReason } from './inject.js';
import type { MeshConfig } from './mesh-config.js';
import type { Pod } from './pod-types.js';

/** What one /inject call came to; bounded, the metric label `result`. */
export type ReviewOutcome = 'injected' | 'skipped' | 'error' | 'bad_request' | 'unsupported_media_type';

export interface ReviewReply {
  httpStatus: number;
  /** JSON body (an AdmissionReview) or a plain-text error for 4xx. */
  body: string;
  contentType: string;
  outcome: ReviewOutcome;
  skipReason?: SkipReason | 'not_a_pod_create';
  /** For the log: uid and namespace/name (generateName + "***" when not named yet, like Istio's potentialPodName). */
  uid?: string;
  pod?: string;
}

interface AdmissionRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind?: string };
  resource?: { resource?: string };
  namespace?: string;
  operation?: string;
  object?: unknown;
}

/**
 * Handles one AdmissionReview POST body. Protocol errors are HTTP errors on
 * purpose: a 415 or 400 is a failed webhook call, so the webhook's
 * failurePolicy decides what happens to the pod. An injection failure is an
 * answered review with allowed: false and the reason in status.message.
 */
export function review(
  contentType: string | undefined,
  body: string,
  mesh: MeshConfig,
  k8sVersion: string | undefined,
  injectFn: typeof inject = inject,
): ReviewReply {
  const mediaType = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (mediaType !== 'application/json') {
    return text(415, `unsupported content type ${JSON.stringify(contentType ?? '')}; expected application/json`, 'unsupported_media_type');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (err) {
    return text(400, `body is not JSON: ${(err as Error).message}`, 'bad_request');
  }
  const req = admissionRequest(parsed);
  if (typeof req === 'string') return text(400, req, 'bad_request');

  const meta = ((req.object ?? {}) as Pod).metadata ?? {};
  const who = { uid: req.uid, pod: `${meta.namespace || req.namespace || ''}/${meta.name || (meta.generateName ? `${meta.generateName}***` : '')}` };
  const answer = (response: Record<string, unknown>): string =>
    JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: req.uid, ...response } });

  const isPodCreate = req.kind?.kind === 'Pod' && (req.kind.group ?? '') === '' && req.operation === 'CREATE';
  if (!isPodCreate) {
    return { httpStatus: 200, contentType: 'application/json', body: answer({ allowed: true }), outcome: 'skipped', skipReason: 'not_a_pod_create', ...who };
  }
  let result: InjectResult;
  try {
    if (req.object === null || typeof req.object !== 'object') throw new Error('request.object is not a Pod');
    result = injectFn(req.object as Pod, mesh, k8sVersion, { namespace: req.namespace });
  } catch (err) {
    const message = `outrigger injection failed: ${(err as Error).message}`;
    return {
      httpStatus: 200,
      contentType: 'application/json',
      body: answer({ allowed: false, status: { code: 500, message } }),
      outcome: 'error',
      ...who,
    };
  }
  const warnings = result.warnings.length ? { warnings: result.warnings } : {};
  if (result.skipReason || result.patch.length === 0) {
    return {
      httpStatus: 200,
      contentType: 'application/json',
      body: answer({ allowed: true, ...warnings }),
      outcome: 'skipped',
      skipReason: result.skipReason ?? 'already_injected',
      ...who,
    };
  }
  const patch = Buffer.from(JSON.stringify(result.patch)).toString('base64');
  return {
    httpStatus: 200,
    contentType: 'application/json',
    body: answer({ allowed: true, patchType: 'JSONPatch', patch, ...warnings }),
    outcome: 'injected',
    ...who,
  };
}

function admissionRequest(v: unknown): AdmissionRequest | string {
  if (v === null || typeof v !== 'object') return 'body is not an AdmissionReview';
  const o = v as Record<string, unknown>;
  if (o.kind !== 'AdmissionReview') return `kind ${JSON.stringify(o.kind)} is not AdmissionReview`;
  if (o.apiVersion !== 'admission.k8s.io/v1') return `apiVersion ${JSON.stringify(o.apiVersion)} is not admission.k8s.io/v1`;
  const r = o.request as Record<string, unknown> | undefined;
  if (r === null || typeof r !== 'object') return 'AdmissionReview has no request';
  if (typeof r.uid !== 'string' || r.uid === '') return 'request.uid is missing';
  return r as unknown as AdmissionRequest;
}

function text(httpStatus: number, message: string, outcome: ReviewOutcome): ReviewReply {
  return { httpStatus, body: message + '\n', contentType: 'text/plain; charset=utf-8', outcome };
}
