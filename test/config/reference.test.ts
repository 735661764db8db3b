/**
 * docs/reference.md is generated from schemas/ (scripts/gen-reference.js):
 * the committed page must be exactly what the schemas give today, so the
 * reference cannot drift from what physcap validates.
 */
import * as fs from 'node:fs';

// eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS script of the build, not a module of the agent
const gen = require('../../scripts/gen-reference.js') as { render: () => string; outFile: string };

test('docs/reference.md matches the schemas (regenerate: node scripts/gen-reference.js --write)', () => {
  expect(fs.readFileSync(gen.outFile, 'utf8')).toBe(gen.render());
});

test('every profile field of the schema is documented, nested ones included', () => {
  const text = gen.render();
  for (const field of [
    'regions',
    'triggers',
    'destination',
    'chunk_size',
    'readback',
    'on_interrupted',
    'keep_free',
    'select_governor',
    'image_path',
    'max_priority',
  ]) {
    expect(text).toContain(`| \`${field}\` |`);
  }
});
