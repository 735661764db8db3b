/** physcap's version, from the package.json it ships in. */
import * as fs from 'node:fs';
import * as path from 'node:path';

function find(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const p = path.join(dir, 'package.json');
    if (fs.existsSync(p)) {
      const pkg = JSON.parse(fs.readFileSync(p, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'physcap' && pkg.version) return pkg.version;
    }
    if (path.dirname(dir) === dir) return '0.0.0-unknown';
  }
}

export const VERSION = find();
