import { expect } from 'chai';
import { util } from 'undici';
import { copyResponseHeaders, headersOfRaw } from '../../../src/proxy/http/headers.js';

const raw = (...pairs: string[]): Buffer[] => pairs.map((s) => Buffer.from(s, 'latin1'));

describe('headersOfRaw: an HTTP/1.1 header block in node:http IncomingMessage form', () => {
  it('lower-cases names, joins repeats with ", " (Cookie with "; "), keeps Set-Cookie an array and the first of a single-valued header', () => {
    const h = headersOfRaw(
      raw('Content-Type', 'text/plain', 'X-Multi', 'a', 'x-multi', 'b', 'Set-Cookie', 'a=1', 'set-cookie', 'b=2', 'Cookie', 'c=1', 'cookie', 'd=2', 'Content-Length', '5', 'content-length', '7', 'Location', '/one', 'Location', '/two'),
      util.headerNameToString,
    );
    expect(h).to.deep.equal({
      'content-type': 'text/plain',
      'x-multi': 'a, b',
      'set-cookie': ['a=1', 'b=2'],
      cookie: 'c=1; d=2',
      'content-length': '5',
      location: '/one',
    });
  });

  it('keeps latin1 bytes as they came, so they go out unchanged', () => {
    const h = headersOfRaw([Buffer.from('x-name'), Buffer.from([0x63, 0x61, 0x66, 0xe9])], util.headerNameToString);
    expect(Buffer.from(h['x-name'] as string, 'latin1')).to.deep.equal(Buffer.from([0x63, 0x61, 0x66, 0xe9]));
  });

  it('copyResponseHeaders drops the hop-by-hop headers and those Connection lists (common values parsed once)', () => {
    for (const connection of ['keep-alive', 'Keep-Alive', 'close', 'keep-alive, x-secret']) {
      const out = copyResponseHeaders({ connection, 'keep-alive': 'timeout=5', 'x-secret': 's', close: 'c', 'x-kept': 'k' }, {});
      const expected: Record<string, string> = { 'x-kept': 'k' };
      if (!connection.includes('x-secret')) expected['x-secret'] = 's';
      if (!/close/i.test(connection)) expected['close'] = 'c';
      expect(out, connection).to.deep.equal(expected);
    }
  });
});
