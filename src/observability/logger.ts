import pino, { type Logger } from 'pino';
import { markFastLines } from './access-line.js';
import { LineWriter } from './line-writer.js';

export type { Logger };

export interface LoggerOptions {
  level?: string;
  /** Destination file descriptor; 1 (stdout) by default. */
  fd?: number;
  /** Buffer writes (LineWriter: 64 KiB asynchronous batches, flushed every second by the sidecar); the hot path should use this. */
  async?: boolean;
}

/**
 * Builds the process's root logger. There is no module-level logger: the
 * composition root makes one and passes children down.
 */
export function createLogger(opts: LoggerOptions = {}): Logger {
  // The hot path's logger (the access log) writes in 64 KiB asynchronous batches (line-writer.ts).
  const dest = opts.async ? new LineWriter(opts.fd ?? 1) : pino.destination({ fd: opts.fd ?? 1, sync: true });
  // Formatted as access-line.ts assumes (ISO time, level label, no serializers or hooks): the access log may bypass pino's serializer.
  return markFastLines(pino(
    {
      level: opts.level ?? process.env.OUTRIGGER_LOG_LEVEL ?? 'info',
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  ));
}

/**
 * The audit log (`--audit-log`): security events of the filters as JSON lines
 * on their own destination — `stdout`, `stderr` or a file path (appended to,
 * created with its directory). Buffered like the access log.
 */
export function createAuditLogger(target: string): Logger {
  const dest =
    target === 'stdout' || target === 'stderr'
      ? pino.destination({ fd: target === 'stdout' ? 1 : 2, sync: false, minLength: 4096 })
      : pino.destination({ dest: target, mkdir: true, append: true, sync: false, minLength: 4096 });
  return pino({ base: undefined, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: () => ({ log: 'audit' }) } }, dest);
}

/** A logger that drops everything, for tests that do not read logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
