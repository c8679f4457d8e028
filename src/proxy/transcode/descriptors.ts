import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createFileRegistry, createRegistry, fromBinary, type FileRegistry, type Registry } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { file_google_rpc_error_details } from '../../gen/google/rpc/error_details_pb.js';
import type { Transcode } from '../../gen/outrigger/config/v1/route_pb.js';
import { fileKey, type DescriptorSources, type SourceState } from './descriptor-sources.js';

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

/** Reflected descriptors that have not arrived yet: the transcoder compiles empty and says why. */
export class DescriptorsPending extends Error {}

/** Where a build finds live descriptor sources (watched files, reflection); absent: files are read directly. */
export interface DescriptorContext {
  readonly sources?: DescriptorSources | undefined;
  /** The route's cluster (reflection asks it). */
  readonly cluster: string;
}

const stateBytes = (st: SourceState): Uint8Array => {
  if ('error' in st) throw new DescriptorError(st.error);
  return st.bytes;
};

/** Reads the FileDescriptorSet a Transcode names. Cached per source within one build via `cache`. */
export function loadDescriptors(t: Transcode, cache: Map<string, DescriptorPool>, dc?: DescriptorContext): DescriptorPool {
  const src = t.descriptorSource;
  let key: string;
  let read: () => Uint8Array;
  if (src.case === 'reflection') {
    const st = dc?.sources?.reflection(dc.cluster, src.value.services);
    if (!st) throw new DescriptorsPending(`descriptors of cluster ${dc?.cluster ?? '?'} have not been fetched by reflection yet`);
    if ('error' in st) throw new DescriptorsPending(st.error);
    key = `reflect:${dc!.cluster}:${src.value.services.join(',')}`;
    read = () => st.bytes;
  } else if (src.case === 'descriptorFile' && dc?.sources?.get(fileKey(src.value))) {
    const st = dc.sources.get(fileKey(src.value))!;
    key = `file:${src.value}`;
    read = () => stateBytes(st);
  } else if (src.case === 'descriptorFile') {
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
    throw new DescriptorError('a descriptor source is required: descriptorFile, descriptorBin or reflection');
  }
  const hit = cache.get(key);
  if (hit) return hit;
  const pool = poolOf(read());
  cache.set(key, pool);
  return pool;
}

/** Compiles a serialized FileDescriptorSet into a pool. */
export const EMPTY_POOL: DescriptorPool = poolOf(new Uint8Array(0));

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
