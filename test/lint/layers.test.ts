/**
 * The agent's folders are layers (docs/architecture.md): each imports only
 * the folders below it, so no two folders depend on each other.  Checked
 * on every relative import of every source file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const src = path.join(__dirname, '..', '..', 'agent', 'src');

/** Bottom first, as docs/architecture.md lists them. */
const LAYERS = [
  'core',
  'native',
  'kernel',
  'manifest',
  'container',
  'destinations',
  'triggers',
  'config',
  'capture',
  'postmortem',
  'scheduler',
  'control',
  'daemon',
  'cli',
];

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [p] : [];
  });
}

const folderOf = (file: string) => path.relative(src, file).split(path.sep)[0]!;

test('every folder of agent/src is a layer', () => {
  const folders = fs
    .readdirSync(src, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
  expect(folders.sort()).toEqual([...LAYERS].sort());
});

test('each folder imports only the folders below it', () => {
  const upward: string[] = [];
  for (const file of sources(src)) {
    const from = folderOf(file);
    for (const m of fs.readFileSync(file, 'utf8').matchAll(/(?:from|import\()\s*'(\.{1,2}\/[^']+)'/g)) {
      const to = folderOf(path.resolve(path.dirname(file), m[1]!));
      if (to !== from && LAYERS.indexOf(to) > LAYERS.indexOf(from)) upward.push(`${path.relative(src, file)} imports ${m[1]} (${from} → ${to})`);
    }
  }
  expect(upward).toEqual([]);
});
