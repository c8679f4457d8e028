import { expect } from 'chai';
import { checkPathTemplate } from '../../../src/config/template-syntax.js';

describe('path template syntax', () => {
  it('accepts the google.api.http grammar', () => {
    for (const t of [
      '/',
      '/v1/shelves',
      '/v1/shelves/{shelf}/books/{book}',
      '/v1/{name=shelves/*/books/*}',
      '/v1/{book.name=shelves/*}:publish',
      '/v1/*/books/**',
      '/v1/{path=**}',
      '/v1/shelves:batchGet',
      '/files/a.b-c_d~e',
      '/p:1/x',
      '/v1/a:b:c',
      '/v1/{name=ops/*}:cancel',
      '/' + Array.from({ length: 64 }, () => 'a').join('/'),
      '/v1/{x=a/b/c}/' + Array.from({ length: 60 }, () => 'a').join('/'),
    ]) {
      expect(checkPathTemplate(t), t).to.equal(undefined);
    }
  });

  it('rejects malformed templates with a reason', () => {
    const cases: [string, string][] = [
      ['v1/shelves', 'must start with "/"'],
      ['/v1//shelves', 'empty segment at offset 4'],
      ['/v1/shelves/', 'empty segment at offset 12'],
      ['/v1/**/books', '"**" must be the last segment'],
      ['/v1/{path=**}/x', '"**" must be the last segment'],
      ['/v1/{shelf', 'unclosed variable "{shelf" at offset 4'],
      ['/v1/{a={b}}', 'nested variable at offset 7'],
      ['/v1/{1abc}', 'invalid variable name "1abc" at offset 4'],
      ['/v1/{a}/{a}', 'variable "a" appears twice'],
      ['/v1/*a', '"*" must be a whole segment (offset 4)'],
      ['/v1/a*', 'unexpected "*" at offset 5'],
      ['/v1/x:', 'empty custom verb after ":"'],
      ['/v1/x:a b', 'invalid verb ":a b"'],
      ['/v1/a b', 'invalid characters in segment "a b"'],
      ['/' + Array.from({ length: 65 }, () => 'a').join('/'), 'more than 64 segments'],
      ['/v1/{x=a/b/c/d}/' + Array.from({ length: 60 }, () => 'a').join('/'), 'more than 64 segments'],
      ['/:get', 'a verb needs a path before it'],
      ['/v1/}', 'unexpected "}" at offset 4'],
    ];
    for (const [t, reason] of cases) expect(checkPathTemplate(t), t).to.equal(reason);
  });
});
