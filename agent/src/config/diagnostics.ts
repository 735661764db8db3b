/**
 * What is wrong with a configuration file, and where: every message is
 *   file:line:col  /json/pointer  what is wrong  (what would be right)
 * and all of a file's problems are reported at once.
 */
export type Severity = 'error' | 'warning';

export interface Diagnostic {
  severity: Severity;
  file: string;
  /** 1-based; 0 when the problem is the file itself (unreadable, empty). */
  line: number;
  col: number;
  /** JSON pointer of the field ("" for the whole document). */
  pointer: string;
  message: string;
  /** What would be right, when it can be said. */
  expected?: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = d.line ? `${d.file}:${d.line}:${d.col}` : d.file;
  const tag = d.severity === 'warning' ? 'warning: ' : '';
  return `${where}  ${d.pointer || '/'}  ${tag}${d.message}${d.expected ? `  (${d.expected})` : ''}`;
}

export function hasErrors(ds: readonly Diagnostic[]): boolean {
  return ds.some((d) => d.severity === 'error');
}

/** Sorted by position, so a file reads top to bottom. */
export function byPosition(a: Diagnostic, b: Diagnostic): number {
  return a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col || a.pointer.localeCompare(b.pointer);
}
