import { expect } from 'chai';
import { detectProtocol, MAX_DETECT_BYTES } from '../../../src/proxy/listener/detect.js';
import { seededRandom } from '../../../src/core/random.js';
import { formatGrpcTimeout, parseGrpcTimeout } from '../../../src/core/duration.js';

const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';

describe('protocol detection', () => {
  const d = (s: string | Buffer): string => detectProtocol(typeof s === 'string' ? Buffer.from(s, 'latin1') : s);

  it('recognises the HTTP/2 preface, and waits for all of it', () => {
    expect(d(PREFACE)).to.equal('h2c');
    expect(d(PREFACE + '\x00\x00\x00\x04')).to.equal('h2c');
    for (let i = 1; i < PREFACE.length; i++) expect(d(PREFACE.slice(0, i)), `prefix ${i}`).to.equal('need_more');
    expect(d('PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n')).to.equal('opaque');
  });

  it('recognises HTTP/1.x request lines, waiting for the end of the line', () => {
    expect(d('GET / HTTP/1.1\r\n')).to.equal('http1');
    expect(d('POST /a?b=c HTTP/1.0\r\nHost: x\r\n')).to.equal('http1');
    expect(d('M-SEARCH * HTTP/1.1\n')).to.equal('http1');
    expect(d('GET /long/path')).to.equal('need_more');
    expect(d('GE')).to.equal('need_more');
    expect(d('GET / HTTP/2.0\r\n')).to.equal('opaque');
    expect(d('GET / FTP/1.1\r\n')).to.equal('opaque');
    expect(d(' GET / HTTP/1.1\r\n')).to.equal('opaque');
    expect(d('GET\r\n')).to.equal('opaque');
  });

  it('recognises a TLS ClientHello record header', () => {
    expect(d(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]))).to.equal('tls');
    expect(d(Buffer.from([0x16, 0x03]))).to.equal('need_more');
    expect(d(Buffer.from([0x16, 0x09, 0x01]))).to.equal('opaque');
  });

  it('calls server-speaks-first and binary protocols opaque', () => {
    expect(d(Buffer.from([0, 1, 2, 3]))).to.equal('opaque');
    expect(d('*1\r\n$4\r\nPING\r\n')).to.equal('opaque'); // redis
    expect(d('SSH-2.0-OpenSSH\r\n')).to.equal('opaque');
  });

  it('never asks for more than MAX_DETECT_BYTES', () => {
    expect(d('GET /' + 'a'.repeat(MAX_DETECT_BYTES))).to.equal('opaque');
    expect(d('A'.repeat(MAX_DETECT_BYTES))).to.equal('opaque');
  });

  it('property: random input never throws, and feeding a valid request byte by byte ends in http1', () => {
    const rnd = seededRandom(42);
    for (let i = 0; i < 5000; i++) {
      const len = rnd.int(64);
      const b = Buffer.alloc(len);
      for (let j = 0; j < len; j++) b[j] = rnd.int(256);
      expect(['h2c', 'http1', 'tls', 'opaque', 'need_more']).to.include(detectProtocol(b));
    }
    const req = Buffer.from('PATCH /x/y?z HTTP/1.1\r\nHost: h\r\n\r\n');
    let last = '';
    for (let i = 1; i <= req.length; i++) {
      last = detectProtocol(req.subarray(0, i));
      if (last !== 'need_more') break;
    }
    expect(last).to.equal('http1');
  });
});

describe('grpc-timeout', () => {
  it('parses every unit and rejects malformed values', () => {
    expect(parseGrpcTimeout('1H')).to.equal(3_600_000);
    expect(parseGrpcTimeout('2M')).to.equal(120_000);
    expect(parseGrpcTimeout('3S')).to.equal(3000);
    expect(parseGrpcTimeout('250m')).to.equal(250);
    expect(parseGrpcTimeout('1500u')).to.equal(1.5);
    expect(parseGrpcTimeout('99999999n')).to.be.closeTo(99.999999, 1e-9);
    for (const bad of ['', 'S', '100', '123456789S', '1x', '-1S', '1.5S']) expect(parseGrpcTimeout(bad), bad).to.equal(-1);
  });

  it('formats within 8 digits and round-trips', () => {
    for (const ms of [0, 1, 999, 123456, 99_999_999, 100_000_000, 10 ** 12]) {
      const f = formatGrpcTimeout(ms);
      expect(f.length).to.be.at.most(9);
      expect(parseGrpcTimeout(f)).to.be.at.least(Math.min(ms, 99_999_999 * 60_000));
    }
  });
});
