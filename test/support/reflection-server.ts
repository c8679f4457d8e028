import { create, createFileRegistry, fromBinary, toBinary, type DescFile } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema as fileProtoSchema, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import type * as grpc from '@grpc/grpc-js';
import {
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from '../../src/gen/grpc/reflection/v1/reflection_pb.js';

/**
 * A minimal gRPC server reflection service (grpc.reflection.v1 and/or
 * v1alpha; their messages are wire-identical) for tests: list_services,
 * file_containing_symbol (the file and its transitive imports, as grpc-go and
 * grpc-java answer), file_by_filename; anything else is an error_response.
 * The descriptors come from `current()` on every request, so a test can
 * change what the server reflects while it runs.
 */
export type ReflectionVersion = 'v1' | 'v1alpha';

export function addReflection(
  server: grpc.Server,
  current: () => { set: Uint8Array; services: readonly string[] },
  versions: readonly ReflectionVersion[] = ['v1', 'v1alpha'],
  /** Send each file's transitive imports along (grpc-go, grpc-java); false: the file alone, the client asks file_by_filename. */
  withImports = true,
): void {
  for (const v of versions) {
    const path = `/grpc.reflection.${v}.ServerReflection/ServerReflectionInfo`;
    const def: grpc.ServiceDefinition = {
      ServerReflectionInfo: {
        path,
        requestStream: true,
        responseStream: true,
        requestSerialize: (m: ServerReflectionRequest) => Buffer.from(toBinary(ServerReflectionRequestSchema, m)),
        requestDeserialize: (b: Buffer) => fromBinary(ServerReflectionRequestSchema, b),
        responseSerialize: (m: ServerReflectionResponse) => Buffer.from(toBinary(ServerReflectionResponseSchema, m)),
        responseDeserialize: (b: Buffer) => fromBinary(ServerReflectionResponseSchema, b),
      },
    };
    server.addService(def, {
      ServerReflectionInfo: (call: grpc.ServerDuplexStream<ServerReflectionRequest, ServerReflectionResponse>) => {
        call.on('data', (req: ServerReflectionRequest) => call.write(answer(req, current(), withImports)));
        call.on('end', () => call.end());
        call.on('error', () => {});
      },
    });
  }
}

function answer(req: ServerReflectionRequest, cur: { set: Uint8Array; services: readonly string[] }, withImports: boolean): ServerReflectionResponse {
  const reg = createFileRegistry(fromBinary(FileDescriptorSetSchema, cur.set));
  const base = { validHost: req.host, originalRequest: req };
  const files = (f: DescFile | undefined): ServerReflectionResponse => {
    if (!f) return create(ServerReflectionResponseSchema, { ...base, messageResponse: { case: 'errorResponse', value: { errorCode: 5, errorMessage: 'not found' } } });
    const out: DescFile[] = [];
    const seen = new Set<string>();
    const visit = (x: DescFile): void => {
      if (seen.has(x.name)) return;
      seen.add(x.name);
      out.push(x);
      if (withImports) x.dependencies.forEach(visit);
    };
    visit(f);
    return create(ServerReflectionResponseSchema, {
      ...base,
      messageResponse: { case: 'fileDescriptorResponse', value: { fileDescriptorProto: out.map((x) => toBinary(fileProtoSchema, x.proto)) } },
    });
  };
  const r = req.messageRequest;
  switch (r.case) {
    case 'listServices':
      return create(ServerReflectionResponseSchema, {
        ...base,
        messageResponse: { case: 'listServicesResponse', value: { service: [...cur.services, 'grpc.reflection.v1.ServerReflection'].map((name) => ({ name })) } },
      });
    case 'fileContainingSymbol': {
      const d = reg.get(r.value);
      return files(d?.file);
    }
    case 'fileByFilename':
      return files(reg.getFile(r.value));
    default:
      return create(ServerReflectionResponseSchema, { ...base, messageResponse: { case: 'errorResponse', value: { errorCode: 12, errorMessage: `${r.case} is not supported` } } });
  }
}
