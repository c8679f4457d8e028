import pino, { type Logger } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level?: string;
  /** Destination file descriptor; 1 (stdout) by default. */
  fd?: number;
  /** Buffer writes (async sonic-boom); the hot path should use this. */
  async?: boolean;
}

/**
 * Builds the process's root logger. There is no module-level logger: the
 * composition root makes one and passes children down.
 */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const dest = pino.destination({ fd: opts.fd ?? 1, sync: !opts.async, minLength: opts.async ? 8192 : 0 });
  return pino(
    {
      level: opts.level ?? process.env.OUTRIGGER_LOG_LEVEL ?? 'info',
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  );
}

/** A logger that drops everything, for tests that do not read logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
