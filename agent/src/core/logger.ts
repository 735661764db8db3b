/**
 * The agent's logger interface: structured fields plus a message, one JSON
 * object per line.  Passed in, never imported as a singleton, so tests and
 * the daemon choose where logs go.
 */
import pino, { DestinationStream } from 'pino';

export type LogFields = Record<string, unknown>;

export interface Logger {
  info(fields: LogFields, message: string): void;
  warn(fields: LogFields, message: string): void;
  error(fields: LogFields, message: string): void;
}

/**
 * The agent's logs: pino, JSON lines on stderr, level names as words,
 * written synchronously so the last lines before an exit are not lost.
 */
export function pinoLogger(level = 'info', destination: DestinationStream = pino.destination({ dest: 2, sync: true })): Logger {
  const p = pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  return {
    info: (fields, message) => p.info(fields, message),
    warn: (fields, message) => p.warn(fields, message),
    error: (fields, message) => p.error(fields, message),
  };
}

/** Keeps every record: for tests, and for `validate`-like callers. */
export function memoryLogger(): Logger & { records: Array<LogFields & { level: string; msg: string }> } {
  const records: Array<LogFields & { level: string; msg: string }> = [];
  const emit = (level: string) => (fields: LogFields, msg: string) => records.push({ ...fields, level, msg });
  return { records, info: emit('info'), warn: emit('warn'), error: emit('error') };
}
