import type { Duration } from '@bufbuild/protobuf/wkt';

/** Reports one problem at a path of the document being checked. */
export type Report = (path: string, message: string) => void;

export function checkNonNegative(d: Duration | undefined, path: string, report: Report): void {
  if (d && (d.seconds < 0n || d.nanos < 0)) report(path, 'must not be negative');
}
