import type * as grpc from '@grpc/grpc-js';
import { fromBinary, toBinary, type DescMessage, type DescMethod, type DescService, type Message } from '@bufbuild/protobuf';

/**
 * Builds a grpc-js ServiceDefinition straight from a @bufbuild service
 * descriptor, so servers and clients run on the generated `*_pb.ts` code alone:
 * no @grpc/proto-loader (a devDependency) and no second copy of the schema
 * that could drift from the one the sidecar's transcoder uses.
 *
 * Keys are the methods' `localName` (`getShelf`), matching
 * `BookstoreService.method.getShelf`; `originalName` carries the proto name
 * (`GetShelf`) so grpc-js also accepts implementations and exposes client
 * methods under that spelling.
 */
export function serviceDefinitionFor(desc: DescService): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<Message, Message>> = {};
  for (const method of desc.methods) {
    definition[method.localName] = methodDefinitionFor(method);
  }
  return definition;
}

/** The HTTP/2 `:path` of a method, `/<package>.<Service>/<Method>`. */
export function methodPath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

function methodDefinitionFor(method: DescMethod): grpc.MethodDefinition<Message, Message> {
  const input = method.input;
  const output = method.output;
  return {
    path: methodPath(method),
    requestStream: method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming',
    responseStream: method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming',
    requestSerialize: serializer(input),
    requestDeserialize: deserializer(input),
    responseSerialize: serializer(output),
    responseDeserialize: deserializer(output),
    originalName: method.name,
  };
}

function serializer(schema: DescMessage): (msg: Message) => Buffer {
  // Buffer.from(Uint8Array) would copy; wrapping the same memory is enough
  // because toBinary hands back a fresh array nobody else holds.
  return (msg) => {
    const bytes = toBinary(schema, msg);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer(schema: DescMessage): (buf: Buffer) => Message {
  return (buf) => fromBinary(schema, buf);
}
