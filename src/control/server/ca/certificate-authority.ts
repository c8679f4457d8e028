import 'reflect-metadata';
import { X509Certificate as NodeX509, createPrivateKey, createPublicKey, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { Clock } from '../../../core/clock.js';

/**
 * The mesh's certificate authority, held by the control plane. X.509 is built
 * and parsed with @peculiar/x509 (WebCrypto keys); node:crypto checks keys and
 * chains. No ASN.1 is written by hand here.
 */

/** PEM of the signing certificate (root or intermediate), its key, and what chains it to a root. */
export interface CaMaterial {
  /** The signing certificate, optionally followed by intermediates up to the root. */
  readonly certPem: string;
  readonly keyPem: string;
  /** Roots the mesh trusts (PEM, several during a root rotation). Default: the last certificate of certPem. */
  readonly bundlePem?: string;
}

export interface IssuedCertificate {
  /** Leaf first, then the intermediates of the CA chain (no root). */
  readonly chain: string[];
  readonly serial: string;
  readonly notAfterMs: number;
}

/** Refusal of a CSR: the caller's fault (bad CSR, wrong identity). */
export class CsrError extends Error {}

const crypto = webcrypto as unknown as Crypto;
x509.cryptoProvider.set(crypto);

/** How far notBefore is backdated, so a peer whose clock is a little behind still accepts a fresh certificate. */
const BACKDATE_MS = 60_000;

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export function splitPem(text: string): string[] {
  return (text.match(PEM_BLOCK) ?? []).map((p) => p.trim() + '\n');
}

function signingParams(key: KeyObject): { import: EcKeyImportParams | RsaHashedImportParams; sign: EcdsaParams | Algorithm } {
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const namedCurve = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : undefined;
    if (!namedCurve) throw new Error(`CA key: EC curve ${curve} is not supported (P-256 or P-384)`);
    return { import: { name: 'ECDSA', namedCurve }, sign: { name: 'ECDSA', hash: namedCurve === 'P-256' ? 'SHA-256' : 'SHA-384' } as EcdsaParams };
  }
  if (key.asymmetricKeyType === 'rsa') {
    return { import: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, sign: { name: 'RSASSA-PKCS1-v1_5' } };
  }
  throw new Error(`CA key: ${key.asymmetricKeyType} keys are not supported (EC P-256/P-384 or RSA)`);
}

export class CertificateAuthority {
  private constructor(
    private readonly signer: x509.X509Certificate,
    private readonly signingKey: CryptoKey,
    private readonly signAlg: EcdsaParams | Algorithm,
    /** Intermediates between the signer and the root, PEM (sent with every leaf). */
    private readonly intermediates: string[],
    readonly bundle: readonly string[],
    readonly trustDomain: string,
    private readonly clock: Clock,
  ) {}

  /** Loads a CA from PEM, checking that the key is the certificate's and that it may sign certificates. */
  static async load(m: CaMaterial, trustDomain: string, clock: Clock): Promise<CertificateAuthority> {
    const certs = splitPem(m.certPem);
    if (certs.length === 0) throw new Error('CA certificate: no PEM certificate found');
    const key = createPrivateKey(m.keyPem);
    const nodeCert = new NodeX509(certs[0]!);
    if (!nodeCert.checkPrivateKey(key)) throw new Error('CA key does not belong to the CA certificate');
    if (!nodeCert.ca) throw new Error('CA certificate is not a CA (basicConstraints cA is not set)');
    const now = clock.nowMs();
    if (Date.parse(nodeCert.validTo) <= now) throw new Error(`CA certificate expired at ${nodeCert.validTo}`);
    const bundle = m.bundlePem ? splitPem(m.bundlePem) : [certs[certs.length - 1]!];
    if (bundle.length === 0) throw new Error('CA bundle: no PEM certificate found');
    // The signer must chain to a root of the bundle (or be one), so leaves verify where the bundle is trusted.
    const chain = certs.map((c) => new NodeX509(c));
    const roots = bundle.map((c) => new NodeX509(c));
    const top = chain[chain.length - 1]!;
    const anchored = roots.some((r) => r.fingerprint256 === top.fingerprint256 || (top.checkIssued(r) && top.verify(r.publicKey)));
    if (!anchored) throw new Error('CA certificate does not chain to a root of the CA bundle');
    const params = signingParams(key);
    const der = key.export({ type: 'pkcs8', format: 'der' });
    const signingKey = await crypto.subtle.importKey('pkcs8', der, params.import, false, ['sign']);
    // Intermediates: everything after the signer that is not itself a bundle root.
    const rootPrints = new Set(roots.map((r) => r.fingerprint256));
    const intermediates = certs.slice(1).filter((_c, i) => !rootPrints.has(chain[i + 1]!.fingerprint256));
    return new CertificateAuthority(new x509.X509Certificate(certs[0]!), signingKey, params.sign, intermediates, bundle, trustDomain, clock);
  }

  /** The fingerprint (node:crypto fingerprint256) of the bundle root the signer chains to. */
  get signerRootFingerprint(): string | undefined {
    const top = new NodeX509(this.intermediates.at(-1) ?? this.signer.toString('pem'));
    const roots = this.bundle.map((r) => new NodeX509(r));
    // By fingerprint, else by signature: rotated roots share their subject name, so a name match is not enough.
    return (roots.find((r) => r.fingerprint256 === top.fingerprint256) ?? roots.find((r) => top.checkIssued(r) && top.verify(r.publicKey)))?.fingerprint256;
  }

  /** The signing certificate's expiry (ms). */
  get notAfterMs(): number {
    return this.signer.notAfter.getTime();
  }

  /**
   * Signs `csrPem` for `spiffeId`. The CSR must be well formed, signed by its
   * own key (proof of possession), an ECDSA P-256 key, and ask for no other
   * identity than `spiffeId` (a URI SAN in it must be exactly that).
   */
  async issue(csrPem: string, spiffeId: string, ttlMs: number): Promise<IssuedCertificate> {
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem);
    } catch (err) {
      throw new CsrError(`not a PEM PKCS#10 certificate request (${(err as Error).message})`);
    }
    if (!(await csr.verify())) throw new CsrError('the CSR signature does not verify (no proof of possession of the key)');
    const pub = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
    if (pub.asymmetricKeyType !== 'ec' || pub.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new CsrError(`the CSR key must be ECDSA P-256 (got ${pub.asymmetricKeyType} ${pub.asymmetricKeyDetails?.namedCurve ?? ''})`.trim());
    }
    // By OID: the class-typed lookup misses when the library is loaded twice (ESM and CJS builds).
    const sanExt = csr.getExtension('2.5.29.17');
    if (sanExt) {
      const names = new x509.SubjectAlternativeNameExtension(sanExt.rawData).names.items;
      const other = names.find((n) => n.type !== 'url' || n.value !== spiffeId);
      if (other) throw new CsrError(`the CSR asks for ${other.type}:${other.value}; this caller may only get ${spiffeId}`);
    }
    const now = this.clock.nowMs();
    const notAfterMs = Math.min(now + ttlMs, this.notAfterMs);
    const serial = '01' + randomBytes(15).toString('hex');
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      // SPIFFE X.509-SVID: the identity is the URI SAN; the subject may be empty (then the SAN is critical).
      subject: '',
      issuer: this.signer.subject,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(notAfterMs),
      publicKey: csr.publicKey,
      signingKey: this.signingKey,
      signingAlgorithm: this.signAlg,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment | x509.KeyUsageFlags.keyAgreement, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }], true),
        await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(this.signer),
      ],
    });
    return { chain: [cert.toString('pem') + '\n', ...this.intermediates], serial, notAfterMs };
  }
}

/**
 * A self-signed root for a control plane started without --ca-cert: ECDSA
 * P-256, 10 years, with the trust domain's SPIFFE ID as its URI SAN (as
 * SPIRE and Istio roots carry). Kept in the store so replicas share it.
 */
export async function generateRoot(trustDomain: string, clock: Clock): Promise<CaMaterial> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = clock.nowMs();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01' + randomBytes(15).toString('hex'),
    name: `O=${trustDomain}, CN=outrigger root CA`,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + 10 * 365 * 24 * 3600_000),
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string;
  return { certPem: cert.toString('pem') + '\n', keyPem };
}
