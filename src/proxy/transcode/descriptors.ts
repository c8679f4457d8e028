import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createFileRegistry, createRegistry, fromBinary, type FileRegistry, type Registry } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { file_google_rpc_error_details } from '../../gen/google/rpc/error_details_pb.js';
import type { Transcode } from '../../gen/outrigger/config/v1/route_pb.js';

/**
 * Descriptor pools for transcoding, built from config once per config
 * version. `files` answers the exposed services; `json` adds the
 * google.rpc error detail types so Any details in a grpc-status-details-bin
 * print as JSON even when the user's set does not import them.
 */
export interface DescriptorPool {
  readonly files: FileRegistry;
  readonly json: Registry;
  /** Content hash of the FileDescriptorSet (16 hex digits). */
  readonly version: string;
}

export class DescriptorError extends Error {}

/** Reads the FileDescriptorSet a Transcode names. Cached per source within one build via `cache`. */
export function loadDescriptors(t: Transcode, cache: Map<string, DescriptorPool>): DescriptorPool {
  const src = t.descriptorSource;
  let key: string;
  let read: () => Uint8Array;
  if (src.case === 'descriptorFile') {
    key = `file:${src.value}`;
    read = () => {
      try {
        return readFileSync(src.value);
      } catch (err) {
        throw new DescriptorError(`cannot read descriptor file: ${(err as Error).message}`);
      }
    };
  } else if (src.case === 'descriptorBin') {
    key = `bin:${Buffer.from(src.value).toString('base64')}`;
    read = () => src.value;
  } else {
    throw new DescriptorError('a descriptor source is required: descriptorFile or descriptorBin');
  }
  const hit = cache.get(key);
  if (hit) return hit;
  const pool = poolOf(read());
  cache.set(key, pool);
  return pool;
}

/** Compiles a serialized FileDescriptorSet into a pool. */
export function poolOf(bytes: Uint8Array): DescriptorPool {
  let files: FileRegistry;
  try {
    files = createFileRegistry(fromBinary(FileDescriptorSetSchema, bytes));
  } catch (err) {
    throw new DescriptorError(`not a usable FileDescriptorSet: ${(err as Error).message}`);
  }
  const version = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  return { files, json: createRegistry(files, file_google_rpc_error_details), version };
}
