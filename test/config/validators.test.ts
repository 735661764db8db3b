/**
 * The validators the build generates (scripts/gen-validators.js) against a
 * compile at run time: generated from the schemas as they are now, and
 * judging every example and fixture the same way, errors included.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { parse } from 'yaml';

import { AJV_OPTIONS, ID, loadSchemas, schemasDigest, schemasDir } from '../../agent/src/config/schemas';

const root = path.join(__dirname, '..', '..');
const generated = path.join(root, 'dist', 'agent', 'src', 'config', 'validators.generated.js');

type Validate = ((data: unknown) => boolean) & { errors?: unknown };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const built = require(generated) as { profile: Validate; agent: Validate; manifest: Validate; schemasSha256: string };

function runtime(): { profile: Validate; agent: Validate } {
  const ajv = new Ajv2020({ ...AJV_OPTIONS, schemas: loadSchemas(schemasDir()).map((s) => JSON.parse(s.text) as object) });
  addFormats(ajv);
  return { profile: ajv.getSchema(`${ID}profile.schema.json`)!, agent: ajv.getSchema(`${ID}agent.schema.json`)! };
}

function yamlFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? yamlFiles(path.join(dir, e.name)) : e.name.endsWith('.yaml') ? [path.join(dir, e.name)] : []));
}

describe('generated validators', () => {
  test('were generated from the schemas as they are now', () => {
    expect(built.schemasSha256).toBe(schemasDigest(loadSchemas(schemasDir())));
  });

  test('judge every example and fixture as a run-time compile does, errors and all', () => {
    const now = runtime();
    const files = [...yamlFiles(path.join(root, 'configs')), ...yamlFiles(path.join(__dirname, 'fixtures'))];
    let compared = 0;
    for (const file of files) {
      let doc: unknown;
      try {
        doc = parse(fs.readFileSync(file, 'utf8'));
      } catch {
        continue; // not YAML: never reaches a validator
      }
      const which = path.basename(file) === 'agent.yaml' ? 'agent' : 'profile';
      const a = built[which](doc);
      const b = now[which](doc);
      expect({ file, valid: a, errors: built[which].errors }).toEqual({ file, valid: b, errors: now[which].errors });
      compared++;
    }
    expect(compared).toBeGreaterThan(40);
  });
});
