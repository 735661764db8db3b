/**
 * The AWS SDK's own managed upload of one file (@aws-sdk/lib-storage's
 * Upload), for the fleet benchmark to time from outside (wall, CPU, peak
 * RSS of this process alone):
 *   node dist/bench/sdk-upload.js FILE ENDPOINT BUCKET KEY PART_BYTES QUEUE [--when-required]
 * The keys come from the environment (AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY), never the command line.  The client is the SDK's
 * defaults but for what an S3-compatible store on 127.0.0.1 needs (the
 * endpoint, path-style addressing); --when-required also turns the SDK's
 * default request checksums off (requestChecksumCalculation and
 * responseChecksumValidation 'WHEN_REQUIRED'), as physcap's own client does.
 * Prints {"bytes":…,"seconds":…,"etag":…}.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import * as fs from 'node:fs';

async function main(): Promise<void> {
  const [file, endpoint, bucket, key, partArg, queueArg] = process.argv.slice(2);
  const partSize = Number(partArg);
  const queueSize = Number(queueArg);
  if (!file || !endpoint || !bucket || !key || !partSize || !queueSize)
    throw new Error('usage: sdk-upload FILE ENDPOINT BUCKET KEY PART_BYTES QUEUE [--when-required]');
  const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey } = process.env;
  if (!accessKeyId || !secretAccessKey) throw new Error('sdk-upload: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set');
  const client = new S3Client({
    endpoint,
    region: process.env.AWS_REGION ?? 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
    ...(process.argv.includes('--when-required') ? { requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' } : {}),
  });
  const t0 = process.hrtime.bigint();
  try {
    const upload = new Upload({ client, params: { Bucket: bucket, Key: key, Body: fs.createReadStream(file) }, partSize, queueSize });
    const r = await upload.done();
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(JSON.stringify({ bytes: fs.statSync(file).size, seconds, etag: r.ETag ?? '' }));
  } finally {
    client.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exitCode = 1;
});
