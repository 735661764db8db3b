/**
 * YAML with positions: the parsed document is kept beside the data so any
 * JSON pointer can be mapped back to the line and column it came from.
 */
import { isMap, isPair, isScalar, isSeq, LineCounter, Node, parseAllDocuments, Document } from 'yaml';

import { Diagnostic } from './diagnostics';

export interface YamlSource {
  file: string;
  data: unknown;
  diagnostics: Diagnostic[];
  /** 1-based line and column of the node at a JSON pointer (its key, if asked). */
  locate(pointer: string, at?: 'key' | 'value'): { line: number; col: number };
}

const MAX_ALIASES = 100; // expansion bombs ("billion laughs") stop here

function firstLine(s: string): string {
  return s.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}

function unescapePointer(seg: string): string {
  return seg.replace(/~1/g, '/').replace(/~0/g, '~');
}

export function parseYaml(file: string, text: string): YamlSource {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: true, strict: true });
  const diagnostics: Diagnostic[] = [];
  const at = (offset: number) => {
    const p = lines.linePos(offset);
    return { line: p.line, col: p.col };
  };
  const empty = (message: string): YamlSource => ({
    file,
    data: undefined,
    diagnostics: [{ severity: 'error', file, line: 0, col: 0, pointer: '', message }],
    locate: () => ({ line: 1, col: 1 }),
  });

  if (!Array.isArray(docs) || docs.length === 0) return empty('the file holds no document (an empty profile?)');
  const doc = docs[0] as Document.Parsed;
  if (docs.length > 1) {
    const second = docs[1] as Document.Parsed;
    diagnostics.push({
      severity: 'error',
      file,
      ...at(second.range[0]),
      pointer: '',
      message: 'more than one YAML document in the file',
      expected: 'one profile per file',
    });
  }
  for (const e of doc.errors) {
    const pos = e.linePos?.[0] ?? at(e.pos[0]);
    const message =
      e.code === 'DUPLICATE_KEY' ? 'a key appears twice in one mapping' : e.code === 'TAB_AS_INDENT' ? 'a tab is used for indentation' : firstLine(e.message);
    diagnostics.push({
      severity: 'error',
      file,
      line: pos.line,
      col: pos.col,
      pointer: '',
      message: `YAML: ${message}`,
      expected: e.code === 'TAB_AS_INDENT' ? 'indent with spaces' : undefined,
    });
  }

  let data: unknown;
  if (!doc.errors.length) {
    try {
      data = doc.toJS({ maxAliasCount: MAX_ALIASES });
    } catch (err) {
      diagnostics.push({ severity: 'error', file, line: 1, col: 1, pointer: '', message: `YAML: ${firstLine((err as Error).message)}` });
      return { file, data: undefined, diagnostics, locate: () => ({ line: 1, col: 1 }) };
    }
    if (data === null || data === undefined) {
      const e = empty('the file holds no document (an empty profile?)');
      return { ...e, diagnostics: [...diagnostics, ...e.diagnostics] };
    }
  }

  const locate = (pointer: string, want: 'key' | 'value' = 'value') => {
    let node: unknown = doc.contents;
    let best: { range?: [number, number, number] | null } | null = node as Node;
    const segs = pointer.split('/').slice(1).map(unescapePointer);
    for (let i = 0; i < segs.length; i++) {
      const seg = segs[i]!;
      const last = i === segs.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === seg);
        if (!pair) break;
        node = last && want === 'key' ? pair.key : pair.value;
      } else if (isSeq(node)) {
        node = node.items[Number(seg)];
      } else {
        break;
      }
      if (node && (node as Node).range) best = node as Node;
      else break;
    }
    return at(best?.range?.[0] ?? 0);
  };
  return { file, data, diagnostics, locate };
}
