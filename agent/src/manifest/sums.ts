/**
 * SHA256SUMS: the coreutils format (`<hex>  <name>`), so `sha256sum -c`
 * checks a capture on a machine without physcap.
 */
export const SUMS_FILE = 'SHA256SUMS';

export function sumsFile(files: Array<{ name: string; sha256: string }>): Buffer {
  return Buffer.from(files.map((f) => `${f.sha256}  ${f.name}\n`).join(''));
}

/** Parses SHA256SUMS; lines that are not `<64 hex>  <name>` are returned as problems. */
export function parseSums(text: string): { sums: Map<string, string>; problems: string[] } {
  const sums = new Map<string, string>();
  const problems: string[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line) return;
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!m) problems.push(`${SUMS_FILE}:${i + 1}: not a "<sha256>  <file>" line`);
    else sums.set(m[2]!, m[1]!);
  });
  return { sums, problems };
}
