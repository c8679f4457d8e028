import { expect } from 'chai';
import { EMPTY_PARAMS } from '../../../src/proxy/router/index.js';
import { match, r, table } from './fixtures.js';

describe('router: template params', () => {
  const t = table([
    r('one', { template: '/one/{a}' }),
    r('two', { template: '/two/{a}/{b}' }),
    r('multi', { template: '/multi/{rest=**}' }),
    r('dotted', { template: '/dotted/{book.name}' }),
    r('none', { template: '/none/*' }),
    r('prefix', { prefix: '/p' }),
  ]);
  const params = (path: string) => match(t, path)?.params;

  it('are percent-decoded', () => {
    expect(params('/one/hello%20world')).to.deep.equal({ a: 'hello world' });
    expect(params('/one/%E2%82%AC')).to.deep.equal({ a: '€' });
    expect(params('/one/a%2Fb'), '%2F decodes inside one segment').to.deep.equal({ a: 'a/b' });
    expect(params('/one/a+b'), '"+" is not a space in a path').to.deep.equal({ a: 'a+b' });
  });

  it('keep the raw text when the encoding is invalid, and never throw', () => {
    expect(params('/one/%zz')).to.deep.equal({ a: '%zz' });
    expect(params('/one/%E2%82')).to.deep.equal({ a: '%E2%82' });
    expect(params('/one/100%')).to.deep.equal({ a: '100%' });
    expect(params('/two/%zz/%41')).to.deep.equal({ a: '%zz', b: 'A' });
  });

  it('a multi-segment capture is joined by "/" and decoded as a whole', () => {
    expect(params('/multi/a/b%20c/d')).to.deep.equal({ rest: 'a/b c/d' });
    expect(params('/multi/a/%zz')).to.deep.equal({ rest: 'a/%zz' });
  });

  it('use the field path as the key', () => {
    expect(params('/dotted/x')).to.deep.equal({ 'book.name': 'x' });
  });

  it('are the shared frozen EMPTY_PARAMS when a route captures nothing', () => {
    expect(params('/none/x')).to.equal(EMPTY_PARAMS);
    expect(params('/p/x')).to.equal(EMPTY_PARAMS);
    expect(Object.isFrozen(EMPTY_PARAMS)).to.equal(true);
  });

  it('are a fresh object per match when there are captures', () => {
    const a = match(t, '/one/x')!;
    const b = match(t, '/one/x')!;
    expect(a.params).to.not.equal(b.params);
    expect(a.route).to.equal(b.route);
  });
});
