import type { Clock } from '../../../core/clock.js';
import { generateRoot, splitPem, type CaMaterial } from './certificate-authority.js';

/**
 * The CA as kept in the store, with what a root rotation in progress needs:
 * the staged root (`next`) until it is committed. `bundlePem` holds both
 * roots from STAGE until DROP.
 */
export interface StoredCa extends CaMaterial {
  readonly next?: { readonly certPem: string; readonly keyPem: string };
}

export type RotationPhase = 'stable' | 'staged' | 'committed';
export type RotationStepName = 'stage' | 'commit' | 'drop';

/** A step asked out of order (FAILED_PRECONDITION). */
export class RotationOrderError extends Error {}

/** The roots a stored CA's sidecars trust. */
export function bundleOf(m: CaMaterial): string[] {
  if (m.bundlePem) return splitPem(m.bundlePem);
  const chain = splitPem(m.certPem);
  return chain.length ? [chain[chain.length - 1]!] : [];
}

export function phaseOf(m: StoredCa): RotationPhase {
  if (m.next) return 'staged';
  return bundleOf(m).length > 1 ? 'committed' : 'stable';
}

const EXPECTED: Record<RotationStepName, RotationPhase> = { stage: 'stable', commit: 'staged', drop: 'committed' };

/**
 * One rotation step, as Istio's and Linkerd's procedures go: STAGE trusts a
 * new self-signed root beside the old one (the old one still signs), COMMIT
 * signs with the new one (both trusted), DROP trusts only the new one.
 * Between steps every sidecar must have renewed once (one certificate
 * lifetime), so that no one is asked to trust what it does not know yet.
 */
export async function rotationStep(m: StoredCa, step: RotationStepName, trustDomain: string, clock: Clock): Promise<StoredCa> {
  const phase = phaseOf(m);
  if (phase !== EXPECTED[step]) {
    const want = phase === 'stable' ? 'stage' : phase === 'staged' ? 'commit' : 'drop';
    throw new RotationOrderError(`cannot ${step}: the CA is ${phase} (next step: ${want})`);
  }
  const bundle = bundleOf(m);
  switch (step) {
    case 'stage': {
      const root = await generateRoot(trustDomain, clock);
      return { certPem: m.certPem, keyPem: m.keyPem, bundlePem: [...bundle, root.certPem].join(''), next: { certPem: root.certPem, keyPem: root.keyPem } };
    }
    case 'commit':
      return { certPem: m.next!.certPem, keyPem: m.next!.keyPem, bundlePem: bundle.join('') };
    case 'drop': {
      // Keep the root the signer chains to (the last certificate of its chain).
      const signerRoot = splitPem(m.certPem).at(-1)!;
      return { certPem: m.certPem, keyPem: m.keyPem, bundlePem: bundle.filter((r) => r.trim() === signerRoot.trim()).join('') || signerRoot };
    }
  }
}
