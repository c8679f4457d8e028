import { expect } from 'chai';
import net from 'node:net';
import {
  countResetStreams,
  ENHANCE_YOUR_CALM,
  limitSettingsFrame,
  PROTOCOL_ERROR,
  scanForSettingsAck,
  SETTINGS_ACK_TIMEOUT_MS,
  SETTINGS_TIMEOUT,
  settingsHandshake,
  type HandshakeFailure,
} from '../../../src/proxy/listener/settings-handshake.js';
import { FakeClock } from '../../support/fake-clock.js';
import { FLAG, FRAME, h2Frame, headersFrame, rstFrame } from '../../support/h2-raw.js';
import { waitFor } from '../../support/wait.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const CLIENT_SETTINGS = h2Frame(FRAME.SETTINGS, 0, 0, Buffer.from([0, 2, 0, 0, 0, 0]));
const ACK = h2Frame(FRAME.SETTINGS, FLAG.ACK, 0, Buffer.alloc(0));
const PING = h2Frame(0x6, 0, 0, Buffer.alloc(8, 1));

describe('HTTP/2 settings handshake', () => {
  describe('scanForSettingsAck (pure)', () => {
    it('finds the first SETTINGS ACK after the preface, skipping other frames', () => {
      const hdrs = headersFrame(1);
      const buf = Buffer.concat([PREFACE, CLIENT_SETTINGS, hdrs, ACK, PING]);
      const start = PREFACE.length + CLIENT_SETTINGS.length + hdrs.length;
      expect(scanForSettingsAck(buf, 0)).to.deep.equal({ kind: 'ack', start, end: start + ACK.length });
    });

    it('waits for whole frames and resumes at a frame boundary', () => {
      const buf = Buffer.concat([PREFACE, CLIENT_SETTINGS, ACK]);
      expect(scanForSettingsAck(buf.subarray(0, 10), 0)).to.deep.equal({ kind: 'need_more', resumeAt: 0 });
      const afterSettings = PREFACE.length + CLIENT_SETTINGS.length;
      for (let n = afterSettings; n < buf.length; n++) {
        expect(scanForSettingsAck(buf.subarray(0, n), 0), `${n} bytes`).to.deep.equal({ kind: 'need_more', resumeAt: afterSettings });
      }
      expect(scanForSettingsAck(buf, afterSettings)).to.deep.equal({ kind: 'ack', start: afterSettings, end: buf.length });
    });

    it('checks the client preface first', () => {
      expect(scanForSettingsAck(Buffer.from('GET / HTTP/1.1\r\n'), 0)).to.deep.equal({ kind: 'bad_preface' });
      expect(scanForSettingsAck(PREFACE.subarray(0, 10), 0)).to.deep.equal({ kind: 'need_more', resumeAt: 0 });
      expect(scanForSettingsAck(Buffer.alloc(0), 0)).to.deep.equal({ kind: 'need_more', resumeAt: 0 });
    });

    it('countResetStreams counts RST_STREAMs of streams opened by HEADERS before them, whole frames only', () => {
      const pairs = (from: number, n: number): Buffer[] => Array.from({ length: n }, (_, i) => [headersFrame(from + 2 * i), rstFrame(from + 2 * i, 8)]).flat();
      const buf = Buffer.concat([PREFACE, CLIENT_SETTINGS, ...pairs(1, 5), ACK]);
      expect(countResetStreams(buf, PREFACE.length)).to.equal(5);
      // A reset of a stream not opened (yet) here, and of the connection (id 0), are not counted.
      expect(countResetStreams(Buffer.concat([rstFrame(1, 8), headersFrame(1), rstFrame(3, 8), h2Frame(FRAME.RST_STREAM, 0, 0, Buffer.alloc(4))]), 0)).to.equal(0);
      // HEADERS of 1 and 3, then both reset: ids only grow, so an earlier one still counts.
      expect(countResetStreams(Buffer.concat([headersFrame(1), headersFrame(3), rstFrame(1, 8), rstFrame(3, 8)]), 0)).to.equal(2);
      const whole = Buffer.concat(pairs(1, 2));
      expect(countResetStreams(whole.subarray(0, whole.length - 1), 0)).to.equal(1);
    });

    it('a SETTINGS frame without the ACK flag is not the ACK', () => {
      expect(scanForSettingsAck(Buffer.concat([PREFACE, CLIENT_SETTINGS, CLIENT_SETTINGS]), 0).kind).to.equal('need_more');
    });
  });

  describe('on a socket', () => {
    let server: net.Server;
    let clock: FakeClock;
    let handedOver: net.Socket[];
    let failures: HandshakeFailure[];
    let maxBytes: number | undefined;
    let resetCounts: (number | undefined)[];

    beforeEach(async () => {
      clock = new FakeClock();
      handedOver = [];
      failures = [];
      maxBytes = undefined;
      resetCounts = [];
      server = net.createServer((sock) => {
        sock.on('error', () => {});
        settingsHandshake(sock, Buffer.alloc(0), {
          maxStreams: 7,
          clock,
          maxBytes,
          maxResets: 10,
          handOver: (s) => handedOver.push(s),
          onFailure: (why, n) => {
            failures.push(why);
            resetCounts.push(n);
          },
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    });
    afterEach(async () => {
      for (const s of handedOver) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    });

    function connect(): { sock: net.Socket; received: () => Buffer; closed: Promise<void> } {
      const sock = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
      sock.on('error', () => {});
      const chunks: Buffer[] = [];
      sock.on('data', (c: Buffer) => chunks.push(c));
      const closed = new Promise<void>((r) => sock.once('close', () => r()));
      return { sock, received: () => Buffer.concat(chunks), closed };
    }

    /** The connection closed after our preface and a GOAWAY with `code`, never handed over. */
    async function endedWith(c: ReturnType<typeof connect>, code: number, why: HandshakeFailure): Promise<void> {
      await c.closed;
      const goaway = c.received().subarray(15);
      expect(goaway[3]).to.equal(FRAME.GOAWAY);
      expect(goaway.readUInt32BE(9 + 4)).to.equal(code);
      expect(failures).to.deep.equal([why]);
      expect(handedOver).to.have.length(0);
    }

    it('sends SETTINGS with only the limit, and hands over everything the client sent except the ACK of it', async () => {
      const c = connect();
      const before = Buffer.concat([PREFACE, CLIENT_SETTINGS, headersFrame(1, '/a', true)]);
      c.sock.write(before);
      await waitFor(() => c.received().length >= 15, 'the server preface');
      expect(c.received()).to.deep.equal(limitSettingsFrame(7));
      expect(handedOver).to.have.length(0);
      c.sock.write(Buffer.concat([ACK, PING]));
      await waitFor(() => handedOver.length === 1, 'the hand-over');
      const s = handedOver[0]!;
      expect(s.isPaused()).to.equal(true);
      const got: Buffer[] = [];
      s.on('data', (b: Buffer) => got.push(b));
      s.resume();
      const expected = Buffer.concat([before, PING]);
      await waitFor(() => Buffer.concat(got).length >= expected.length, 'the unread bytes');
      expect(Buffer.concat(got)).to.deep.equal(expected);
      expect(failures).to.deep.equal([]);
      c.sock.destroy();
    });

    it('a client that never ACKs gets GOAWAY(SETTINGS_TIMEOUT) when the timeout passes, and is never handed over', async () => {
      const c = connect();
      c.sock.write(Buffer.concat([PREFACE, CLIENT_SETTINGS, headersFrame(1)]));
      await waitFor(() => c.received().length >= 15, 'the server preface');
      clock.advance(SETTINGS_ACK_TIMEOUT_MS - 1);
      expect(failures).to.deep.equal([]);
      clock.advance(1);
      await endedWith(c, SETTINGS_TIMEOUT, 'settings_timeout');
    });

    it('a client that sends too much before its ACK gets GOAWAY(ENHANCE_YOUR_CALM)', async () => {
      maxBytes = 100;
      const c = connect();
      c.sock.write(Buffer.concat([PREFACE, CLIENT_SETTINGS, ...Array<Buffer>(6).fill(PING)]));
      await endedWith(c, ENHANCE_YOUR_CALM, 'too_much_before_ack');
    });

    it('more streams opened and reset in the bytes read by the ACK than the reset budget: GOAWAY(ENHANCE_YOUR_CALM), nothing handed over', async () => {
      const c = connect();
      const pairs = Array.from({ length: 11 }, (_, i) => [headersFrame(1 + 2 * i), rstFrame(1 + 2 * i, 8)]).flat();
      // The burst before the ACK (an attacker need not wait for it) and one pair after it, in one write.
      c.sock.write(Buffer.concat([PREFACE, CLIENT_SETTINGS, ...pairs.slice(0, 20), ACK, ...pairs.slice(20)]));
      await endedWith(c, ENHANCE_YOUR_CALM, 'rapid_reset');
      expect(resetCounts).to.deep.equal([11]);
    });

    it('up to the reset budget in those bytes is handed over as usual', async () => {
      const c = connect();
      const pairs = Array.from({ length: 10 }, (_, i) => [headersFrame(1 + 2 * i), rstFrame(1 + 2 * i, 8)]).flat();
      c.sock.write(Buffer.concat([PREFACE, CLIENT_SETTINGS, ...pairs, ACK]));
      await waitFor(() => handedOver.length === 1, 'the hand-over');
      expect(failures).to.deep.equal([]);
      c.sock.destroy();
    });

    it('a connection that does not start with the client preface gets GOAWAY(PROTOCOL_ERROR) at once', async () => {
      const c = connect();
      c.sock.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      await endedWith(c, PROTOCOL_ERROR, 'bad_preface');
    });

    it('a client that goes away during the handshake is a plain close', async () => {
      const c = connect();
      c.sock.write(PREFACE);
      await waitFor(() => c.received().length >= 15, 'the server preface');
      c.sock.destroy();
      await waitFor(() => failures.length === 1, 'the close');
      expect(failures).to.deep.equal(['closed']);
      expect(clock.pending).to.equal(0);
    });
  });
});
