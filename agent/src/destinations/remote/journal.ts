/**
 * The durable record of one capture's copy to a remote destination: one
 * JSON line per step, each fsynced before the step is counted, so a copy
 * cut by a network loss, `kill -9` or a reboot resumes where the journal
 * says and never re-sends a part the journal holds.  A torn last line (a
 * crash mid-append) is ignored: the step it recorded is simply done again.
 */
import * as fs from 'node:fs';

export type JournalStep =
  /** The copy began: where to, and the plan's digest (a changed plan is a new copy). */
  | { t: 'begin'; remote: string; plan: string; at: string }
  /** A multipart upload was created for a file. */
  | { t: 'upload'; file: string; uploadId: string }
  /** A part is on the server: its ETag and MD5 (base64). */
  | { t: 'part'; file: string; n: number; etag: string; md5: string }
  /** A file is whole on the server. */
  | { t: 'file'; file: string; etag: string }
  /** Every file is there and the copy was checked against the manifest. */
  | { t: 'verified'; at: string; how: string };

export interface JournalState {
  begin?: Extract<JournalStep, { t: 'begin' }>;
  uploads: Map<string, string>;
  parts: Map<string, Map<number, { etag: string; md5: string }>>;
  files: Map<string, string>;
  verified?: Extract<JournalStep, { t: 'verified' }>;
}

export function emptyState(): JournalState {
  return { uploads: new Map(), parts: new Map(), files: new Map() };
}

function apply(s: JournalState, step: JournalStep): void {
  switch (step.t) {
    case 'begin':
      s.begin = step;
      break;
    case 'upload':
      s.uploads.set(step.file, step.uploadId);
      s.parts.set(step.file, new Map());
      break;
    case 'part':
      if (!s.parts.has(step.file)) s.parts.set(step.file, new Map());
      s.parts.get(step.file)!.set(step.n, { etag: step.etag, md5: step.md5 });
      break;
    case 'file':
      s.files.set(step.file, step.etag);
      break;
    case 'verified':
      s.verified = step;
      break;
  }
}

/** Replays a journal's text; lines that do not parse (a torn append) end it. */
export function replay(text: string): JournalState {
  const s = emptyState();
  for (const line of text.split('\n')) {
    if (!line) continue;
    let step: JournalStep;
    try {
      step = JSON.parse(line) as JournalStep;
    } catch {
      break;
    }
    apply(s, step);
  }
  return s;
}

export class Journal {
  readonly state: JournalState;
  private fd: number;

  private constructor(
    readonly file: string,
    text: string,
  ) {
    this.state = replay(text);
    // A torn tail is cut off, so the next line starts clean.
    const good = text.lastIndexOf('\n') + 1;
    this.fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
    if (good !== Buffer.byteLength(text)) fs.ftruncateSync(this.fd, Buffer.byteLength(text.slice(0, good)));
  }

  static open(file: string): Journal {
    let text = '';
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return new Journal(file, text);
  }

  /** The state a journal file records, without opening it for writing (list, status). */
  static read(file: string): JournalState | undefined {
    try {
      return replay(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Appends a step and makes it durable before returning. */
  append(step: JournalStep): void {
    const line = Buffer.from(`${JSON.stringify(step)}\n`);
    const end = fs.fstatSync(this.fd).size;
    fs.writeSync(this.fd, line, 0, line.length, end);
    fs.fdatasyncSync(this.fd);
    apply(this.state, step);
  }

  /** Starts over (the plan changed): everything recorded is forgotten. */
  reset(): void {
    fs.ftruncateSync(this.fd, 0);
    fs.fdatasyncSync(this.fd);
    Object.assign(this.state, emptyState());
    delete this.state.begin;
    delete this.state.verified;
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}
