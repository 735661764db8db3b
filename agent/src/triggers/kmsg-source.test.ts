/**
 * The kernel log reader against this machine's real /dev/kmsg: a record
 * written now arrives parsed, records from before the start never do, and
 * stopping ends the native thread.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

import { memoryLogger } from '../core/logger';
import { KmsgRecord } from './kmsg-record';
import { KmsgSource } from './kmsg-source';

test('new records arrive parsed; old ones never; stop ends the reader', async () => {
  const tag = `physcap-test-${crypto.randomBytes(4).toString('hex')}`;
  fs.writeFileSync('/dev/kmsg', `<6>${tag} before start\n`);
  const log = memoryLogger();
  const source = new KmsgSource(log);
  const seen: KmsgRecord[] = [];
  source.subscribe((r) => {
    if (r.message.includes(tag)) seen.push(r);
  });
  source.start();
  try {
    fs.writeFileSync('/dev/kmsg', `<4>${tag} after start\n`);
    const deadline = Date.now() + 5000;
    while (!seen.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(seen.map((r) => r.message)).toEqual([`${tag} after start`]);
    expect(seen[0]).toMatchObject({ level: 4, facility: 1 }); // written from user space: facility "user"
  } finally {
    await source.stop();
  }
  expect(log.records.filter((r) => r.level === 'error')).toEqual([]);
});

test('a path that is not there: a Node-style error at start', () => {
  const source = new KmsgSource(memoryLogger(), '/nonexistent/kmsg');
  expect(() => source.start()).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'open' }));
});
