import { create } from '@bufbuild/protobuf';
import { expect } from 'chai';
import { TranscodeSchema } from '../../../src/gen/outrigger/config/v1/route_pb.js';
import { file_outrigger_examples_bookstore_v1_bookstore } from '../../../src/gen/outrigger/examples/bookstore/v1/bookstore_pb.js';
import { dialectOf } from '../../../src/proxy/transcode/dispatch.js';
import { Transcoder } from '../../../src/proxy/transcode/transcoder.js';
import { descriptorSetOf } from '../../support/echo-backend.js';

/** The dialect rule of docs/transcoding.md ("Dialects on one port"), case by case. */
describe('transcode dispatch: which dialect a request speaks', () => {
  const tr = Transcoder.compile(
    create(TranscodeSchema, { descriptorSource: { case: 'descriptorBin', value: descriptorSetOf(file_outrigger_examples_bookstore_v1_bookstore) } }),
    new Map(),
  );
  const M = '/outrigger.examples.bookstore.v1.BookstoreService/GetShelf';
  const cases: [string, string, string | undefined, Record<string, string>, string][] = [
    ['POST', M, 'application/grpc-web+proto', {}, 'grpc-web'],
    ['POST', M, 'application/grpc-web-text', {}, 'grpc-web'],
    ['POST', '/unknown/Path', 'application/grpc-web', {}, 'grpc-web'],
    ['POST', M, 'application/json', {}, 'connect'],
    ['POST', M, 'application/json; charset=utf-8', {}, 'connect'],
    ['POST', M, 'application/proto', {}, 'connect'],
    ['GET', `${M}?connect=v1&encoding=json&message=%7B%7D`, undefined, {}, 'connect'],
    ['POST', M, 'application/connect+json', {}, 'connect-stream'],
    ['POST', M, 'application/connect+proto', {}, 'connect-stream'],
    ['OPTIONS', M, undefined, { 'access-control-request-method': 'POST' }, 'cors-preflight'],
    ['OPTIONS', M, undefined, {}, 'rest'],
    ['POST', M, 'text/plain', {}, 'rest'],
    ['PUT', M, 'application/json', {}, 'rest'],
    ['POST', '/outrigger.examples.bookstore.v1.BookstoreService/Nope', 'application/json', {}, 'rest'],
    ['POST', '/v1/shelves', 'application/json', {}, 'rest'],
    ['GET', '/v1/shelves/1', undefined, {}, 'rest'],
    ['GET', '/.well-known/openapi.json', undefined, {}, 'openapi'],
    ['HEAD', '/.well-known/openapi.json?x=1', undefined, {}, 'openapi'],
    ['POST', '/.well-known/openapi.json', 'application/json', {}, 'rest'],
  ];
  for (const [method, target, ct, extra, want] of cases) {
    it(`${method} ${target} ${ct ?? '(no content-type)'} → ${want}`, () => {
      const headers = { ...(ct ? { 'content-type': ct } : {}), ...extra };
      expect(dialectOf(tr, method, target, headers).dialect).to.equal(want);
    });
  }
});
