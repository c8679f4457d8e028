import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { create, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import { serviceDefinitionFor } from '../../examples/bookstore/grpc-service.js';
import { BookstoreService } from '../../src/gen/outrigger/examples/bookstore/v1/bookstore_pb.js';

/**
 * Typed grpc-js clients for @bufbuild services, for tests that talk to the
 * bookstore directly or through the sidecar. Method names are the services'
 * localNames (`getShelf`); requests may be given as init objects
 * (`{ shelf: 1n }`). Unary calls are promises; streaming calls return the
 * grpc-js stream, typed.
 */

/** 64 MiB both ways, like the bookstore server, so 16 MiB messages pass. */
export const CLIENT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

type MethodsOfKind<T extends GenServiceMethods, K extends string> = {
  [M in keyof T]: T[M]['methodKind'] extends K ? M : never;
}[keyof T] &
  string;
type In<T extends GenServiceMethods, M extends keyof T> = MessageShape<T[M]['input']>;
type InInit<T extends GenServiceMethods, M extends keyof T> = MessageInitShape<T[M]['input']>;
type Out<T extends GenServiceMethods, M extends keyof T> = MessageShape<T[M]['output']>;

export interface CallOptions {
  readonly metadata?: grpc.Metadata;
  /** Absolute deadline: a Date or epoch milliseconds. */
  readonly deadline?: grpc.Deadline;
}

export interface UnaryResult<Res> {
  readonly response: Res;
  /** Response initial metadata (headers). */
  readonly metadata: grpc.Metadata;
  /** Final status; its `metadata` holds the trailers. */
  readonly status: grpc.StatusObject;
}

export interface ClientStreamCall<Req, Res> {
  readonly call: grpc.ClientWritableStream<Req>;
  /** Settles when the call ends: the result on OK, the grpc-js ServiceError otherwise. */
  readonly result: Promise<UnaryResult<Res>>;
}

export type ClientOptions = Partial<grpc.ChannelOptions> & { credentials?: grpc.ChannelCredentials };

export interface TypedClient<T extends GenServiceMethods> {
  /** The underlying grpc-js client (methods under both `getShelf` and `GetShelf`). */
  readonly raw: RawClient;
  /** Resolves on OK; rejects with the grpc-js ServiceError (code, details, trailers in `metadata`). */
  unary<M extends MethodsOfKind<T, 'unary'>>(
    method: M,
    request: InInit<T, M>,
    opts?: CallOptions,
  ): Promise<UnaryResult<Out<T, M>>>;
  serverStream<M extends MethodsOfKind<T, 'server_streaming'>>(
    method: M,
    request: InInit<T, M>,
    opts?: CallOptions,
  ): grpc.ClientReadableStream<Out<T, M>>;
  clientStream<M extends MethodsOfKind<T, 'client_streaming'>>(
    method: M,
    opts?: CallOptions,
  ): ClientStreamCall<In<T, M>, Out<T, M>>;
  bidiStream<M extends MethodsOfKind<T, 'bidi_streaming'>>(
    method: M,
    opts?: CallOptions,
  ): grpc.ClientDuplexStream<In<T, M>, Out<T, M>>;
  close(): void;
}

/** A grpc-js client whose methods are added at run time by makeGenericClientConstructor. */
export type RawClient = grpc.Client & { [method: string]: unknown };

export type BookstoreClient = TypedClient<typeof BookstoreService extends GenService<infer T> ? T : never>;

export function bookstoreClient(address: string, opts: ClientOptions = {}): BookstoreClient {
  return typedClient(BookstoreService, address, opts);
}

type RawMethod = (...args: unknown[]) => grpc.ClientUnaryCall;

export function typedClient<T extends GenServiceMethods>(
  service: GenService<T>,
  address: string,
  opts: ClientOptions = {},
): TypedClient<T> {
  const { credentials, ...channelOptions } = opts;
  const Ctor = grpc.makeGenericClientConstructor(serviceDefinitionFor(service), service.typeName);
  const raw = new Ctor(address, credentials ?? grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': CLIENT_MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': CLIENT_MAX_MESSAGE_BYTES,
    ...channelOptions,
  });
  const rawMethod = (name: string): RawMethod => (raw[name] as RawMethod).bind(raw);
  const callOptions = (o: CallOptions): grpc.CallOptions => (o.deadline === undefined ? {} : { deadline: o.deadline });
  const input = (name: string, init: unknown) => create(service.method[name]!.input, init as never);

  return {
    raw,
    unary(method, request, opts = {}) {
      const c = collector<Out<T, typeof method>>();
      const call = rawMethod(method)(
        input(method, request),
        opts.metadata ?? new grpc.Metadata(),
        callOptions(opts),
        c.callback,
      );
      return c.attach(call);
    },
    serverStream(method, request, opts = {}) {
      const call = rawMethod(method)(input(method, request), opts.metadata ?? new grpc.Metadata(), callOptions(opts));
      return call as unknown as grpc.ClientReadableStream<Out<T, typeof method>>;
    },
    clientStream(method, opts = {}) {
      const c = collector<Out<T, typeof method>>();
      const call = rawMethod(method)(opts.metadata ?? new grpc.Metadata(), callOptions(opts), c.callback);
      const result = c.attach(call);
      return { call: call as unknown as grpc.ClientWritableStream<In<T, typeof method>>, result };
    },
    bidiStream(method, opts = {}) {
      const call = rawMethod(method)(opts.metadata ?? new grpc.Metadata(), callOptions(opts));
      return call as unknown as grpc.ClientDuplexStream<In<T, typeof method>, Out<T, typeof method>>;
    },
    close: () => raw.close(),
  };
}

/**
 * Gathers what a unary or client-streaming call reports. grpc-js calls the
 * callback before it emits 'status', so the response is kept and the promise
 * settles on 'status', when the trailers are known too.
 */
function collector<Res>() {
  let response: Res | undefined;
  let fail: (err: grpc.ServiceError) => void = () => {};
  return {
    callback: (err: grpc.ServiceError | null, res?: Res): void => {
      if (err) fail(err);
      else response = res;
    },
    attach(call: grpc.ClientUnaryCall): Promise<UnaryResult<Res>> {
      let metadata = new grpc.Metadata();
      return new Promise<UnaryResult<Res>>((resolve, reject) => {
        fail = reject;
        call.on('metadata', (md: grpc.Metadata) => (metadata = md));
        call.on('status', (status: grpc.StatusObject) => {
          if (status.code === grpc.status.OK && response !== undefined) resolve({ response, metadata, status });
        });
      });
    },
  };
}

/** Resolves with the grpc-js error of a call expected to fail; rejects if it succeeds. */
export async function callFailure(call: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await call;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error('call succeeded but was expected to fail');
}

/** Reads a response stream to its end: the messages, and the error if it did not end OK. */
export function collectStream<T>(stream: NodeJS.ReadableStream): Promise<{ messages: T[]; error?: grpc.ServiceError }> {
  const messages: T[] = [];
  return new Promise((resolve) => {
    stream.on('data', (m: T) => messages.push(m));
    stream.on('error', (error: grpc.ServiceError) => resolve({ messages, error }));
    stream.on('end', () => resolve({ messages }));
  });
}

/** The next message of a response stream. */
export async function nextMessage<T>(stream: NodeJS.ReadableStream): Promise<T> {
  const [message] = await once(stream, 'data');
  return message as T;
}

/** Builds request metadata from a record; arrays become repeated entries, Buffers go with `-bin` keys. */
export function metadataOf(entries: Record<string, grpc.MetadataValue | grpc.MetadataValue[]>): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [key, value] of Object.entries(entries)) {
    for (const v of Array.isArray(value) ? value : [value]) md.add(key, v);
  }
  return md;
}
