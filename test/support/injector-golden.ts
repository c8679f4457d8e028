import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { applyPatch, type Operation } from 'rfc6902';
import { parse, stringify } from 'yaml';
import { Pod as PodModel } from 'kubernetes-models/v1';
import type { Pod } from '../../injector/pod-types.js';

export const FIXTURES = fileURLToPath(new URL('../fixtures/injector/', import.meta.url));
/** Set to regenerate the `<case>.injected.yaml` goldens instead of comparing. */
export const UPDATE = process.env.OUTRIGGER_UPDATE_GOLDEN === '1';

/** The golden table: every `<case>.yaml` in the fixtures, with how it is injected. */
export interface GoldenCase {
  name: string;
  k8sVersion: string;
  /** The AdmissionRequest's namespace. */
  namespace: string;
  /** Expected skip reason, or undefined when injected. */
  skip?: string;
}

export const CASES: GoldenCase[] = [
  { name: 'deployment-pod', k8sVersion: '1.28', namespace: 'shop' },
  { name: 'deployment-pod-native', k8sVersion: 'v1.30.4', namespace: 'shop' },
  { name: 'probes-init', k8sVersion: '1.28', namespace: 'finance' },
  { name: 'job-pod', k8sVersion: '1.30', namespace: 'batch' },
  { name: 'generate-name', k8sVersion: '1.31', namespace: 'echo' },
  { name: 'annotated', k8sVersion: '1.31', namespace: 'shop' },
  { name: 'host-network', k8sVersion: '1.30', namespace: 'monitoring', skip: 'host_network' },
  { name: 'opted-out', k8sVersion: '1.30', namespace: 'shop', skip: 'opted_out' },
  { name: 'already-injected', k8sVersion: '1.28', namespace: 'shop', skip: 'already_injected' },
];

export function loadCase(name: string): Pod {
  return parse(readFileSync(join(FIXTURES, `${name}.yaml`), 'utf8')) as Pod;
}

export function applyTo(pod: Pod, patch: Operation[]): Pod {
  const copy = structuredClone(pod);
  const results = applyPatch(copy, patch);
  for (const r of results) if (r) throw new Error(`patch did not apply: ${r.name}: ${r.message}`);
  return copy;
}

/** Compares with (or, under OUTRIGGER_UPDATE_GOLDEN=1, writes) `<case>.injected.yaml`. */
export function checkGolden(name: string, injected: Pod): void {
  const file = join(FIXTURES, `${name}.injected.yaml`);
  const text = `# generated from ${name}.yaml; regenerate with OUTRIGGER_UPDATE_GOLDEN=1 npm test\n` + stringify(injected, { lineWidth: 0 });
  if (UPDATE) {
    writeFileSync(file, text);
    return;
  }
  expect(existsSync(file), `${file} missing: run OUTRIGGER_UPDATE_GOLDEN=1 npm test`).to.equal(true);
  const golden = readFileSync(file, 'utf8');
  if (golden !== text) {
    // Structural diff first for a readable message, then the exact text.
    expect(injected, `${name}: stale golden; regenerate with OUTRIGGER_UPDATE_GOLDEN=1 and review the diff`).to.deep.equal(parse(golden));
    expect(text, `${name}: golden formatting differs; regenerate with OUTRIGGER_UPDATE_GOLDEN=1`).to.equal(golden);
  }
}

/** Goldens (and inputs) with no case in the table are stale too. */
export function strayFixtures(): string[] {
  const known = new Set(CASES.flatMap((c) => [`${c.name}.yaml`, `${c.name}.injected.yaml`]));
  return readdirSync(FIXTURES).filter((f) => f.endsWith('.yaml') && !known.has(f) && !f.startsWith('workloads'));
}

/** Schema validation (kubernetes-models / the OpenAPI schemas); throws with the failing paths. */
export function validatePod(pod: Pod): void {
  new PodModel(pod as ConstructorParameters<typeof PodModel>[0]).validate();
}
