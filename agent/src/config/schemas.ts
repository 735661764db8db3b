/**
 * The JSON Schemas in schemas/, compiled once (ajv, 2020-12, strict, all
 * errors), and ajv's errors turned into positioned diagnostics.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020';

import { Diagnostic } from './diagnostics';
import { YamlSource } from './yaml-source';

export function schemasDir(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'schemas', 'profile.schema.json');
    if (fs.existsSync(candidate)) return path.dirname(candidate);
    if (path.dirname(dir) === dir) throw new Error(`no schemas/ directory above ${__dirname}`);
  }
}

/** Every *.schema.json under dir, by its path relative to dir, in a fixed order. */
export function loadSchemas(dir: string): Array<{ name: string; text: string }> {
  const out: Array<{ name: string; text: string }> = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else if (e.name.endsWith('.schema.json'))
        out.push({ name: path.relative(dir, path.join(d, e.name)), text: fs.readFileSync(path.join(d, e.name), 'utf8') });
    }
  };
  walk(dir);
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** What validators were generated from: the schemas' names and texts. */
export function schemasDigest(schemas: Array<{ name: string; text: string }>): string {
  const h = crypto.createHash('sha256');
  for (const s of schemas) h.update(`${s.name}\0${s.text}\0`);
  return h.digest('hex');
}

export const ID = 'https://physcap.dev/schemas/v1/';
/** The options every compile uses, the build's (scripts/gen-validators.js) and the run time's. */
export const AJV_OPTIONS = {
  strict: true,
  // "kind" is required beside a discriminator whose branches define it.
  strictRequired: false,
  allErrors: true,
  discriminator: true,
} as const;
type Validators = { profile: ValidateFunction; agent: ValidateFunction; manifest: ValidateFunction };
let compiled: Validators | undefined;

/**
 * The validators: the build's, generated ahead of time from these very
 * schemas (compiling them takes ~280 ms, which every CLI command would
 * pay), or else compiled now (a source checkout, a schema edited since).
 */
export function validators(): Validators {
  if (compiled) return compiled;
  const schemas = loadSchemas(schemasDir());
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const built = require('./validators.generated') as Validators & { schemasSha256: string };
    if (built.schemasSha256 === schemasDigest(schemas)) {
      compiled = { profile: built.profile, agent: built.agent, manifest: built.manifest };
      return compiled;
    }
  } catch {
    /* not generated: compiled below */
  }
  // Loaded only here: a CLI command with the generated validators never needs ajv's compiler.
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { default: Ajv2020 } = require('ajv/dist/2020') as typeof import('ajv/dist/2020');
  const { default: addFormats } = require('ajv-formats') as typeof import('ajv-formats');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const ajv = new Ajv2020({ ...AJV_OPTIONS, schemas: schemas.map((s) => JSON.parse(s.text) as object) });
  addFormats(ajv);
  compiled = {
    profile: ajv.getSchema(`${ID}profile.schema.json`)!,
    agent: ajv.getSchema(`${ID}agent.schema.json`)!,
    manifest: ajv.getSchema(`${ID}manifest.schema.json`)!,
  };
  return compiled;
}

function describe(e: ErrorObject): { message: string; expected?: string; pointer: string; at: 'key' | 'value'; shownPointer?: string } {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(p.additionalProperty);
      // A key that could be a misspelt field is quoted; anything else (a
      // line of some other file read as YAML) is not echoed into
      // diagnostics and logs, only its position and length.
      const quotable = /^[A-Za-z0-9_.-]{1,64}$/.test(key);
      return {
        pointer: `${e.instancePath}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`,
        at: 'key',
        message: quotable ? `unknown field "${key}"` : `unknown field (a key of ${key.length} characters that is no field name; not quoted)`,
        expected: quotable ? 'check the spelling; the schema lists every field' : 'is this file a physcap profile?',
        ...(quotable ? {} : { shownPointer: e.instancePath || '/' }),
      };
    }
    case 'required':
      return { pointer: e.instancePath, at: 'value', message: `missing required field "${String(p.missingProperty)}"` };
    case 'const':
      return { pointer: e.instancePath, at: 'value', message: 'wrong value', expected: `${JSON.stringify(p.allowedValue)}` };
    case 'enum':
      return {
        pointer: e.instancePath,
        at: 'value',
        message: 'not one of the allowed values',
        expected: `one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`,
      };
    case 'type':
      return { pointer: e.instancePath, at: 'value', message: `wrong type`, expected: `${String(p.type)}` };
    case 'pattern':
      return { pointer: e.instancePath, at: 'value', message: 'does not have the expected form', expected: `matching ${String(p.pattern)}` };
    case 'minItems':
      return { pointer: e.instancePath, at: 'value', message: 'too few items', expected: `at least ${String(p.limit)}` };
    case 'maximum':
    case 'minimum':
      return {
        pointer: e.instancePath,
        at: 'value',
        message: `out of range`,
        expected: `${e.keyword === 'maximum' ? 'at most' : 'at least'} ${String(p.limit)}`,
      };
    case 'discriminator':
      return {
        pointer: `${e.instancePath}/${String(p.tag)}`,
        at: 'value',
        message: p.error === 'mapping' ? `unknown kind` : 'missing "kind"',
        expected: 'see the schema for the kinds there are',
      };
    default:
      return { pointer: e.instancePath, at: 'value', message: e.message ?? e.keyword };
  }
}

/** ajv's errors for one document as diagnostics, one per problem. */
export function schemaDiagnostics(src: YamlSource, errors: readonly ErrorObject[]): Diagnostic[] {
  const seen = new Set<string>();
  const out: Diagnostic[] = [];
  // anyOf alternatives (size: integer or string) each complain; keep the anyOf's own error.
  const anyOfPaths = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  for (const e of errors) {
    if (e.keyword !== 'anyOf' && anyOfPaths.has(e.instancePath) && e.schemaPath.includes('/anyOf/')) continue;
    // A missing "kind" is also reported as a missing required field: once is enough.
    if (e.keyword === 'discriminator' && (e.params as { error?: string }).error === 'tag') continue;
    const d = e.keyword === 'anyOf' ? anyOfDescription(e) : describe(e);
    const key = `${d.pointer}|${d.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({
      severity: 'error',
      file: src.file,
      ...src.locate(d.pointer, d.at),
      pointer: d.shownPointer ?? d.pointer,
      message: d.message,
      expected: d.expected,
    });
  }
  return out;
}

function anyOfDescription(e: ErrorObject): { message: string; expected?: string; pointer: string; at: 'value'; shownPointer?: string } {
  const ref = e.schemaPath;
  if (ref.includes('size')) return { pointer: e.instancePath, at: 'value', message: 'not a size', expected: 'e.g. 4096, "64KiB", "1.5GiB"' };
  if (ref.includes('duration')) return { pointer: e.instancePath, at: 'value', message: 'not a duration', expected: 'e.g. 30, "30s", "5m", "1h30m"' };
  return { pointer: e.instancePath, at: 'value', message: e.message ?? 'no alternative matches' };
}
