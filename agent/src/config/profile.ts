/**
 * The typed, immutable profile the agent works with: defaults applied, units
 * resolved (sizes and addresses as bigint, durations in milliseconds).
 * Built only from a document the schema accepted.
 */
import { parseAddress, parseDuration, parseSize } from '../core/units';
import { destinationKind, DestinationSpec } from '../destinations/registry';
import { triggerKind, TriggerSpec } from '../triggers/registry';

export type RegionSpec =
  | { name: string; kind: 'range'; start: bigint; size: bigint; allowDevice: boolean; memory: 'quiescent' | 'live' }
  | { name: string; kind: 'iomem'; iomem: string; allowDevice: boolean; memory: 'quiescent' | 'live' };

export type { DestinationSpec, TriggerSpec };

export interface Profile {
  name: string;
  description: string;
  enabled: boolean;
  regions: readonly RegionSpec[];
  triggers: readonly TriggerSpec[];
  destination: DestinationSpec;
  output: { format: 'elf' | 'raw' };
  hash: { algorithm: 'sha256'; chunkSize: bigint; readback: 'auto' | 'always' | 'never' };
  /** An ed25519 private key (PEM) that signs every manifest. */
  signingKey?: string;
  source: { kind: 'auto' | 'kernel' | 'devmem' | 'image'; imagePath?: string; imageBase: bigint };
  cooldownMs: number;
  priority: number;
  labels: Readonly<Record<string, string>>;
  /** The file it came from, and a SHA-256 of its text (for the manifest). */
  file: string;
  textSha256: string;
}

type Json = Record<string, unknown>;

function ok<T>(v: T | Error): T {
  if (v instanceof Error) throw v; // the schema and the semantic checks ran first
  return v;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

function region(r: Json): RegionSpec {
  const common = {
    name: String(r.name),
    allowDevice: r.allow_device === true,
    memory: (r.memory as 'quiescent' | 'live') ?? 'quiescent',
  };
  if (typeof r.iomem === 'string') return { ...common, kind: 'iomem', iomem: r.iomem };
  const start = ok(parseAddress(r.start));
  const size = r.size !== undefined ? ok(parseSize(r.size)) : ok(parseAddress(r.end)) - start + 1n;
  return { ...common, kind: 'range', start, size };
}

export function buildProfile(doc: Json, file: string, textSha256: string): Profile {
  const output = (doc.output as Json | undefined) ?? {};
  const hash = (doc.hash as Json | undefined) ?? {};
  const source = (doc.source as Json | undefined) ?? {};
  const name = String(doc.name);
  return deepFreeze({
    name,
    description: (doc.description as string) ?? '',
    enabled: doc.enabled !== false,
    regions: (doc.regions as Json[]).map(region),
    triggers: (doc.triggers as Json[]).map((t) => triggerKind(String(t.kind)).parse(t, name)),
    destination: destinationKind(String((doc.destination as Json).kind)).parse(doc.destination as Json),
    output: { format: (output.format as 'elf' | 'raw') ?? 'elf' },
    hash: {
      algorithm: 'sha256',
      chunkSize: ok(parseSize(hash.chunk_size ?? '4MiB')),
      readback: (hash.readback as 'auto' | 'always' | 'never') ?? 'auto',
    },
    signingKey: ((doc.signing as Json | undefined)?.key as string | undefined) ?? undefined,
    source: {
      kind: (source.kind as Profile['source']['kind']) ?? 'auto',
      imagePath: source.image_path as string | undefined,
      imageBase: ok(parseAddress(source.image_base ?? '0x0')),
    },
    cooldownMs: ok(parseDuration(doc.cooldown ?? '5m')),
    priority: (doc.priority as number) ?? 50,
    labels: { ...((doc.labels as Record<string, string>) ?? {}) },
    file,
    textSha256,
  });
}
