/**
 * The agent's logger interface: structured fields plus a message, one JSON
 * object per line.  Passed in, never imported as a singleton, so tests and
 * the daemon choose where logs go.
 */
export type LogFields = Record<string, unknown>;

export interface Logger {
  info(fields: LogFields, message: string): void;
  warn(fields: LogFields, message: string): void;
  error(fields: LogFields, message: string): void;
}

/** JSON lines to a writable (stderr by default). */
export function jsonLogger(write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const emit = (level: string) => (fields: LogFields, message: string) =>
    write(
      `${JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...fields }, (_k, v: unknown) =>
        typeof v === 'bigint' ? v.toString() : v,
      )}\n`,
    );
  return { info: emit('info'), warn: emit('warn'), error: emit('error') };
}

/** Keeps every record: for tests, and for `validate`-like callers. */
export function memoryLogger(): Logger & { records: Array<LogFields & { level: string; msg: string }> } {
  const records: Array<LogFields & { level: string; msg: string }> = [];
  const emit = (level: string) => (fields: LogFields, msg: string) => records.push({ ...fields, level, msg });
  return { records, info: emit('info'), warn: emit('warn'), error: emit('error') };
}
