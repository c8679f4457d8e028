import { X509Certificate } from 'node:crypto';
import { durationFromMs, timestampFromMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { CaService, RotationStep, type CaStateSchema } from '../../../gen/outrigger/control/v1/ca_pb.js';
import type { Logger } from '../../../observability/logger.js';
import { authenticate, type AuthOptions } from '../auth.js';
import type { CaHolder } from './ca-holder.js';
import { RotationOrderError, type RotationStepName } from './root-rotation.js';

export interface CaServiceOptions {
  readonly holder: CaHolder;
  readonly auth: AuthOptions;
  readonly certTtlMs: number;
  readonly logger: Logger;
}

const STEPS: Partial<Record<RotationStep, RotationStepName>> = {
  [RotationStep.STAGE]: 'stage',
  [RotationStep.COMMIT]: 'commit',
  [RotationStep.DROP]: 'drop',
};

/**
 * `outrigger ca` on the control API: the CA's roots and rotation phase, and
 * the three root-rotation steps (docs/security.md#root-rotation). Operator
 * credentials as for the OperatorService; each step is one audit line.
 */
export function caService(opts: CaServiceOptions): ServiceImpl<typeof CaService> {
  const state = async (): Promise<MessageInitShape<typeof CaStateSchema>> => {
    const ca = await opts.holder.refresh();
    const signer = ca.signerRootFingerprint;
    return {
      phase: await opts.holder.phase(),
      rotatable: opts.holder.rotatable,
      certTtl: durationFromMs(opts.certTtlMs),
      roots: ca.bundle.map((pem) => {
        const c = new X509Certificate(pem);
        return { fingerprint: c.fingerprint256, subject: c.subject.replace(/\n/g, ', '), notAfter: timestampFromMs(Date.parse(c.validTo)), signing: c.fingerprint256 === signer, pem };
      }),
    };
  };
  return {
    async getCa(_req, ctx: HandlerContext) {
      authenticate(ctx, opts.auth);
      return { state: await state() };
    },
    async rotateRoot(req, ctx: HandlerContext) {
      const who = authenticate(ctx, opts.auth);
      const step = STEPS[req.step];
      if (!step) throw new ConnectError('step: one of ROTATION_STEP_STAGE, ROTATION_STEP_COMMIT, ROTATION_STEP_DROP', Code.InvalidArgument);
      if (!opts.holder.rotatable) throw new ConnectError('the CA comes from --ca-cert/--ca-key: rotate it by replacing the files (docs/security.md#root-rotation)', Code.FailedPrecondition);
      try {
        await opts.holder.rotate(step);
      } catch (err) {
        if (err instanceof RotationOrderError) throw new ConnectError(err.message, Code.FailedPrecondition);
        throw err;
      }
      const out = await state();
      opts.logger.info({ audit: true, op: 'ca-rotate', who, step, phase: out.phase, roots: out.roots!.map((r) => r.fingerprint) }, `CA root rotation: ${step}`);
      return { state: out };
    },
  };
}
