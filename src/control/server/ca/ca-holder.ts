import type { Clock, Timer } from '../../../core/clock.js';
import type { Logger } from '../../../observability/logger.js';
import type { CaStore } from '../../store/state-store.js';
import { CertificateAuthority } from './certificate-authority.js';
import { phaseOf, rotationStep, type RotationPhase, type RotationStepName, type StoredCa } from './root-rotation.js';

/** How often a replica re-reads the stored CA (a rotation step made on another replica). */
const REFRESH_MS = 10_000;

/**
 * The CA a control plane signs with now. Immutable CertificateAuthority
 * values swapped whole: one from --ca-cert (never changes), or the one kept
 * in the store, re-read before each issuance and every 10 s, so every
 * replica follows a root rotation made on any of them.
 */
export class CaHolder {
  private ca: CertificateAuthority;
  private text: string | undefined;
  private timer: Timer | undefined;
  private readonly listeners: ((ca: CertificateAuthority) => void)[] = [];

  constructor(
    initial: CertificateAuthority,
    /** The store the CA is kept in; undefined: it comes from files (not rotatable here). */
    private readonly store: CaStore | undefined,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {
    this.ca = initial;
  }

  get rotatable(): boolean {
    return this.store !== undefined;
  }

  current(): CertificateAuthority {
    return this.ca;
  }

  /** Called after the CA changed (a rotation step), with the new one. */
  onChange(cb: (ca: CertificateAuthority) => void): void {
    this.listeners.push(cb);
  }

  /** Re-reads the stored CA every 10 s until close(). */
  start(): void {
    if (!this.store) return;
    const tick = (): void => {
      this.timer = this.clock.setTimer(REFRESH_MS, () => {
        this.refresh().then(tick, (err: Error) => {
          this.logger.warn({ err: err.message }, 'CA: could not re-read the stored CA');
          tick();
        });
      });
    };
    tick();
  }

  close(): void {
    this.timer?.cancel();
  }

  /** The current CA after re-reading the store (one read; a parse only when it changed). */
  async refresh(): Promise<CertificateAuthority> {
    if (!this.store) return this.ca;
    const text = await this.store.loadCa();
    if (text !== undefined && text !== this.text) this.install(text, await CertificateAuthority.load(JSON.parse(text) as StoredCa, this.ca.trustDomain, this.clock));
    return this.ca;
  }

  /** The stored CA's rotation phase. */
  async phase(): Promise<RotationPhase> {
    if (!this.store) return 'stable';
    const text = await this.store.loadCa();
    return text === undefined ? 'stable' : phaseOf(JSON.parse(text) as StoredCa);
  }

  /** Applies one rotation step to the stored CA (compare-and-set; retried when another replica wrote meanwhile). */
  async rotate(step: RotationStepName): Promise<CertificateAuthority> {
    if (!this.store) throw new Error('the CA comes from --ca-cert/--ca-key: rotate it by replacing the files (docs/security.md)');
    for (let i = 0; i < 5; i++) {
      const text = await this.store.loadCa();
      if (text === undefined) throw new Error('no CA in the store');
      const next = JSON.stringify(await rotationStep(JSON.parse(text) as StoredCa, step, this.ca.trustDomain, this.clock));
      // Loaded (and so checked) before it is stored: a broken step never reaches the replicas.
      const ca = await CertificateAuthority.load(JSON.parse(next) as StoredCa, this.ca.trustDomain, this.clock);
      if (await this.store.replaceCa(text, next)) {
        this.install(next, ca);
        return ca;
      }
    }
    throw new Error('the stored CA kept changing under this rotation step; try again');
  }

  private install(text: string, ca: CertificateAuthority): void {
    const changed = this.text !== undefined || ca.bundle.join('') !== this.ca.bundle.join('') || ca.notAfterMs !== this.ca.notAfterMs;
    this.text = text;
    this.ca = ca;
    if (!changed) return;
    this.logger.info({ roots: ca.bundle.length, notAfter: new Date(ca.notAfterMs).toISOString() }, 'CA changed (root rotation)');
    for (const cb of this.listeners) cb(ca);
  }
}
