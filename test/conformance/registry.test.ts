/**
 * The registries and the schemas agree: every registered kind's schema
 * fragment is a branch of the profile schema (what editors and `validate`
 * read), and every fragment on disk belongs to a registered kind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { DESTINATION_KINDS } from '../../agent/src/destinations/registry';
import { TRIGGER_KINDS } from '../../agent/src/triggers/registry';

const schemas = path.join(__dirname, '..', '..', 'schemas');
const profileSchema = JSON.parse(fs.readFileSync(path.join(schemas, 'profile.schema.json'), 'utf8')) as {
  $defs: Record<string, { oneOf: Array<{ $ref: string }> }>;
};

describe.each([
  ['destination', 'destinations', DESTINATION_KINDS as ReadonlyArray<{ kind: string; schema: string }>],
  ['trigger', 'triggers', TRIGGER_KINDS as ReadonlyArray<{ kind: string; schema: string }>],
])('%s kinds', (def, folder, kinds) => {
  test('the profile schema lists exactly the registered kinds, in their fragments', () => {
    expect(profileSchema.$defs[def]!.oneOf.map((b) => b.$ref).sort()).toEqual(kinds.map((k) => k.schema).sort());
  });
  test("each fragment's kind is the kind that registers it, and no fragment is left over", () => {
    for (const k of kinds) {
      const s = JSON.parse(fs.readFileSync(path.join(schemas, k.schema), 'utf8')) as { properties: { kind: { const: string } } };
      expect(s.properties.kind.const).toBe(k.kind);
    }
    expect(
      fs
        .readdirSync(path.join(schemas, folder))
        .map((f) => `${folder}/${f}`)
        .sort(),
    ).toEqual(kinds.map((k) => k.schema).sort());
  });
});
