/**
 * manifest.json: what a capture is, how it was made, and the digests that
 * prove it.  schemas/manifest.schema.json is the same shape for other
 * tools; this is the agent's typed view.  Addresses are hex strings (they
 * can exceed 2^53); sizes are numbers (bytes, well below 2^53).
 */

export interface ManifestRegion {
  name: string;
  /** Physical start, "0x..." */
  phys: string;
  size: number;
  source: 'kernel' | 'devmem' | 'image';
  /** zero-copy: no byte copied by a CPU; copy: some were (see the byte counts); none: a failed capture never reached it. */
  mode: 'zero-copy' | 'copy' | 'none';
  /** The profile opted in to reading a range not known to be RAM. */
  allowDevice?: true;
  bytesZeroCopy: number;
  bytesCopied: number;
  bytesBounced: number;
  bytesPoisoned: number;
  memory: 'quiescent' | 'live';
  /**
   * Which bytes the region's digests (sha256, chunks) are of: concurrent:
   * the memory, read while it was written (exact for quiescent memory);
   * read-back: what reached the disk, read back with direct I/O.
   */
  digest: 'concurrent' | 'read-back';
  /** The data file holding the region and the region's offset in it. */
  file: string;
  offset: number;
  /**
   * SHA-256 of the region's bytes.  Empty when the region was never
   * reached (a failed capture), and in an ELF core with chunk digests:
   * there the chunk digests and core.elf's digest cover its bytes.
   */
  sha256: string;
  /** 0 when there are no chunk digests. */
  chunkSize: number;
  /** Inline when few; otherwise a sidecar file with one hex digest per line. */
  chunks: string[] | { file: string; count: number; sha256: string };
}

export interface ManifestFile {
  name: string;
  size: number;
  sha256: string;
  /**
   * SHA-256 of the file's bytes outside its regions, in file order (an ELF
   * core's headers, notes and padding).  With the regions' chunk digests,
   * every byte has a digest that can be checked on any core, so verify
   * need not re-run the one in-order whole-file digest.  Only when every
   * region in the file has chunk digests.
   */
  gapsSha256?: string;
}

export interface ManifestTrigger {
  kind: string;
  /** ISO time. */
  time: string;
  reason?: string;
  detail?: Record<string, unknown>;
  /** Events after the first that were folded into this capture. */
  coalesced: boolean;
}

export interface Manifest {
  apiVersion: 'physcap.dev/v1';
  kind: 'CaptureManifest';
  id: string;
  status: 'complete' | 'failed';
  error?: { code?: string; message: string; region?: string };
  profile: { name: string; file: string; sha256: string };
  labels: Record<string, string>;
  triggers: ManifestTrigger[];
  host: { hostname: string; machineId: string | null; bootId: string | null; kernelRelease: string; arch: string };
  versions: { agent: string; addon: string | null; moduleAbi: number | null };
  /** elf: one ELF core (core.elf); raw: one file per region. */
  format: 'elf' | 'raw';
  /** ELF: the byte order the container was written in. */
  byteOrder: 'little' | 'big';
  regions: ManifestRegion[];
  /** Every file of the capture except manifest.json, its signature and SHA256SUMS. */
  files: ManifestFile[];
  /**
   * durable: when the last byte was on the disk (written and synced);
   * digested: when the last digest was done.  The digests trail the
   * writer, so digested - durable is what hashing added.  Both only for a
   * complete capture.
   */
  timing: { started: string; finished: string; seconds: number; bytesPerSecond: number; durable?: string; digested?: string };
  /** What computed the digests: "OpenSSL 3.0.15 (user space)", or a kernel crypto driver's name from /proc/crypto. */
  digestEngine?: string;
  /** The hash of the destination's last index entry before this capture (null for the first). */
  previous: string | null;
  /** Set when the manifest has a detached signature (manifest.json.sig). */
  signature?: { algorithm: 'ed25519'; keyId: string; file: string };
}
