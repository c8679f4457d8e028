import type { JsonObject } from '@bufbuild/protobuf';
import { expect } from 'chai';
import { r, req, table, winner } from './fixtures.js';

const SVC = 'outrigger.examples.bookstore.v1.BookstoreService';

describe('router: gRPC, method and header conditions', () => {
  describe('grpc', () => {
    const t = table([
      r('method', { grpc: { service: SVC, method: 'GetShelf' } }),
      r('service', { grpc: { service: SVC } }),
    ]);
    const g = (path: string, isGrpc = true) => winner(t, req(path, { isGrpc, method: 'POST' }));

    it('matches /<service>/<method> only for gRPC requests', () => {
      expect(g(`/${SVC}/GetShelf`)).to.equal('method');
      expect(g(`/${SVC}/GetShelf`, false)).to.equal(undefined);
    });

    it('without a method, takes every method of the service', () => {
      expect(g(`/${SVC}/ListShelves`)).to.equal('service');
    });

    it('requires exactly two path segments and an equal service', () => {
      expect(g(`/${SVC}/`)).to.equal(undefined);
      expect(g(`/${SVC}/A/B`)).to.equal(undefined);
      expect(g(`/${SVC}x/GetShelf`)).to.equal(undefined);
      expect(g(`/x.${SVC}/GetShelf`)).to.equal(undefined);
      expect(g(`/${SVC}/GetShelfX`), 'method compared whole').to.equal('service');
    });

    it('combines with a path specifier as an extra condition', () => {
      const t2 = table([r('g', { prefix: '/', grpc: { service: SVC } }), r('web', { prefix: '/' })]);
      expect(winner(t2, req(`/${SVC}/GetShelf`, { isGrpc: true }))).to.equal('g');
      expect(winner(t2, req(`/${SVC}/GetShelf`))).to.equal('web');
      expect(winner(t2, req('/other/GetShelf', { isGrpc: true }))).to.equal('web');
    });
  });

  describe('methods', () => {
    const t = table([r('read', { prefix: '/', methods: ['GET', 'head'] }), r('any', { prefix: '/' })]);

    it('matches any of the listed methods, case-insensitively', () => {
      expect(winner(t, req('/x', { method: 'GET' }))).to.equal('read');
      expect(winner(t, req('/x', { method: 'HEAD' }))).to.equal('read');
      expect(winner(t, req('/x', { method: 'get' }))).to.equal('read');
      expect(winner(t, req('/x', { method: 'POST' }))).to.equal('any');
    });
  });

  describe('headers', () => {
    const h = (m: JsonObject, headers: Record<string, string | string[] | undefined>) =>
      winner(table([r('h', { prefix: '/', headers: [m] }), r('other', { prefix: '/' })]), req('/', { headers }));

    it('exact', () => {
      expect(h({ name: 'x-env', exact: 'canary' }, { 'x-env': 'canary' })).to.equal('h');
      expect(h({ name: 'x-env', exact: 'canary' }, { 'x-env': 'canary2' })).to.equal('other');
      expect(h({ name: 'x-env', exact: 'canary' }, {})).to.equal('other');
    });

    it('names are case-insensitive (config is lower-cased; requests come lower-case)', () => {
      expect(h({ name: 'X-Env', exact: 'canary' }, { 'x-env': 'canary' })).to.equal('h');
    });

    it('prefix', () => {
      expect(h({ name: 'user-agent', prefix: 'grpc-' }, { 'user-agent': 'grpc-node/1.0' })).to.equal('h');
      expect(h({ name: 'user-agent', prefix: 'grpc-' }, { 'user-agent': 'curl/8' })).to.equal('other');
    });

    it('regex, anchored to the whole value', () => {
      expect(h({ name: 'x-v', regex: 'v[0-9]+' }, { 'x-v': 'v12' })).to.equal('h');
      expect(h({ name: 'x-v', regex: 'v[0-9]+' }, { 'x-v': 'v12b' })).to.equal('other');
      expect(h({ name: 'x-v', regex: 'v[0-9]+' }, { 'x-v': 'av12' })).to.equal('other');
    });

    it('present: true needs the header, present: false needs it absent', () => {
      expect(h({ name: 'x-debug', present: true }, { 'x-debug': '' })).to.equal('h');
      expect(h({ name: 'x-debug', present: true }, {})).to.equal('other');
      expect(h({ name: 'x-debug', present: false }, {})).to.equal('h');
      expect(h({ name: 'x-debug', present: false }, { 'x-debug': '1' })).to.equal('other');
    });

    it('a matcher with only a name is a presence test', () => {
      expect(h({ name: 'x-debug' }, { 'x-debug': '1' })).to.equal('h');
      expect(h({ name: 'x-debug' }, {})).to.equal('other');
    });

    it('invert flips the result, also for an absent header', () => {
      expect(h({ name: 'x-env', exact: 'prod', invert: true }, { 'x-env': 'dev' })).to.equal('h');
      expect(h({ name: 'x-env', exact: 'prod', invert: true }, { 'x-env': 'prod' })).to.equal('other');
      expect(h({ name: 'x-env', exact: 'prod', invert: true }, {})).to.equal('h');
      expect(h({ name: 'x-env', present: true, invert: true }, {})).to.equal('h');
    });

    it('joins a multi-value header with "," before matching', () => {
      expect(h({ name: 'x-tag', exact: 'a,b' }, { 'x-tag': ['a', 'b'] })).to.equal('h');
      expect(h({ name: 'x-tag', prefix: 'a,' }, { 'x-tag': ['a', 'b'] })).to.equal('h');
      expect(h({ name: 'x-tag', exact: 'a' }, { 'x-tag': ['a', 'b'] })).to.equal('other');
    });

    it('treats inherited properties of a plain header object as absent', () => {
      expect(h({ name: 'constructor', present: true }, {})).to.equal('other');
      expect(h({ name: 'toString', exact: 'x' }, {})).to.equal('other');
      expect(h({ name: '__proto__', prefix: 'x' }, {})).to.equal('other');
    });

    it('all header matchers of a route must hold', () => {
      const t = table([
        r('both', { prefix: '/', headers: [{ name: 'a', exact: '1' }, { name: 'b', exact: '2' }] }),
        r('other', { prefix: '/' }),
      ]);
      expect(winner(t, req('/', { headers: { a: '1', b: '2' } }))).to.equal('both');
      expect(winner(t, req('/', { headers: { a: '1' } }))).to.equal('other');
    });
  });
});
