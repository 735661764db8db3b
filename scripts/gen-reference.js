#!/usr/bin/env node
// Generates docs/reference.md from schemas/: capture profiles, agent.yaml and
// the capture manifest, every field with its type, default and description.
// The schemas are the reference; this page is how people read them, so it
// is generated and a test (test/config/reference.test.ts) fails when the
// committed page differs from what this prints.
//
// usage: node scripts/gen-reference.js          print the page
//        node scripts/gen-reference.js --write  write docs/reference.md
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const schemaDir = path.join(root, 'schemas');
const out = path.join(root, 'docs', 'reference.md');

const files = new Map();
function load(rel) {
  if (!files.has(rel)) files.set(rel, JSON.parse(fs.readFileSync(path.join(schemaDir, rel), 'utf8')));
  return files.get(rel);
}

/** Resolves a $ref relative to the file it appears in: { file, schema, name }. */
function resolve(ref, fromFile) {
  const [file, pointer] = ref.split('#');
  const rel = file ? path.posix.join(path.posix.dirname(fromFile), file) : fromFile;
  let node = load(rel);
  const parts = (pointer || '').split('/').filter(Boolean);
  for (const p of parts) node = node[p];
  if (!node) throw new Error(`cannot resolve ${ref} from ${fromFile}`);
  return { file: rel, schema: node, name: parts[parts.length - 1] };
}

const code = (v) => `\`${typeof v === 'string' ? v : JSON.stringify(v)}\``;
const cell = (s) =>
  String(s ?? '')
    .replace(/\|/g, '\\|')
    .replace(/\n/g, ' ');

/** A short type for a table cell; common definitions link to their section. */
function typeOf(s, file) {
  if (s.$ref) {
    const r = resolve(s.$ref, file);
    if (r.file === 'common.schema.json') return `[${r.name}](#${r.name.toLowerCase()})`;
    return typeOf(r.schema, r.file);
  }
  if (s.const !== undefined) return code(s.const);
  if (s.enum) return s.enum.map(code).join(' | ');
  if (s.type === 'array') return `list of ${s.items ? typeOf(s.items, file) : 'any'}`;
  const key = s.discriminator && s.discriminator.propertyName;
  if (s.oneOf && key) {
    const kinds = s.oneOf.map((v) => (v.$ref ? resolve(v.$ref, file).schema : v).properties[key].const);
    return `object by ${key}: ${kinds.map(code).join(', ')} (below)`;
  }
  if (s.oneOf || s.anyOf) return (s.oneOf || s.anyOf).map((x) => typeOf(x, file)).join(' or ');
  if (s.type === 'object' && s.properties) return 'object (below)';
  if (s.type === 'object' && s.additionalProperties && typeof s.additionalProperties === 'object') return `map of ${typeOf(s.additionalProperties, file)}`;
  const t = Array.isArray(s.type) ? s.type.join(' or ') : s.type || 'any';
  return s.pattern && t === 'string' ? `string matching ${code(s.pattern)}` : t;
}

function limits(s) {
  const l = [];
  if (s.minimum !== undefined) l.push(`≥ ${s.minimum}`);
  if (s.maximum !== undefined) l.push(`≤ ${s.maximum}`);
  if (s.minItems !== undefined) l.push(`at least ${s.minItems}`);
  if (s.maxItems !== undefined) l.push(`at most ${s.maxItems}`);
  if (s.minLength !== undefined && s.minLength > 0) l.push(`non-empty`);
  return l.length ? ` (${l.join(', ')})` : '';
}

/** The object schema behind a property, if it has fields of its own (for a sub-section). */
function objectBehind(s, file) {
  if (s.$ref) {
    const r = resolve(s.$ref, file);
    if (r.file === 'common.schema.json') return undefined;
    return objectBehind(r.schema, r.file);
  }
  if (s.type === 'array' && s.items) return objectBehind(s.items, file);
  if (s.properties || s.oneOf) return { schema: s, file };
  return undefined;
}

function section(lines, title, level, s, file) {
  lines.push(`${'#'.repeat(level)} ${title}`, '');
  if (s.description) lines.push(s.description, '');
  if (s.oneOf) {
    // A discriminated union: one sub-section per variant.
    const key = s.discriminator && s.discriminator.propertyName;
    for (const v of s.oneOf) {
      const r = v.$ref ? resolve(v.$ref, file) : { schema: v, file };
      const tag = key && r.schema.properties && r.schema.properties[key] ? r.schema.properties[key].const : r.schema.title;
      section(lines, `${title} — ${key ? `${key}: ${tag}` : tag}`, level + 1, r.schema, r.file);
    }
    return;
  }
  const props = Object.entries(s.properties || {});
  if (!props.length) return;
  const required = new Set(s.required || []);
  lines.push('| field | type | required | default | description |', '|---|---|---|---|---|');
  const nested = [];
  for (const [name, p] of props) {
    const def = p.default !== undefined ? code(p.default) : '';
    lines.push(`| \`${name}\` | ${cell(typeOf(p, file))}${limits(p)} | ${required.has(name) ? 'yes' : ''} | ${cell(def)} | ${cell(p.description)} |`);
    const obj = objectBehind(p, file);
    if (obj && (obj.schema.properties || obj.schema.oneOf)) nested.push([p.type === 'array' ? `${name}[]` : name, obj]);
  }
  lines.push('');
  if (s.additionalProperties === false) lines.push('Any other field is an error.', '');
  for (const [name, obj] of nested) section(lines, `${title}.${name}`, level + 1, obj.schema, obj.file);
}

function render() {
  const lines = [
    '# Reference: profiles, agent settings, manifests',
    '',
    '<!-- Generated from schemas/ by scripts/gen-reference.js: do not edit; run `node scripts/gen-reference.js --write`. -->',
    '',
    'Every field physcap reads or writes, from the JSON Schemas in `schemas/` that `physcap validate` and the agent check',
    'against. Editors that speak the YAML language server validate as you type with',
    "`# yaml-language-server: $schema=<path to schemas/profile.schema.json>` as a profile's first line.",
    '',
  ];
  section(lines, 'Capture profile', 2, load('profile.schema.json'), 'profile.schema.json');
  section(lines, 'Agent settings (agent.yaml)', 2, load('agent.schema.json'), 'agent.schema.json');
  section(lines, 'Capture manifest (manifest.json)', 2, load('manifest.schema.json'), 'manifest.schema.json');
  const common = load('common.schema.json');
  lines.push('## Common types', '', common.description || '', '');
  for (const [name, d] of Object.entries(common.$defs)) {
    lines.push(`### ${name}`, '', d.description || '', '');
  }
  return `${lines
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trimEnd()}\n`;
}

module.exports = { render, outFile: out };

if (require.main === module) {
  const text = render();
  if (process.argv.includes('--write')) fs.writeFileSync(out, text);
  else process.stdout.write(text);
}
