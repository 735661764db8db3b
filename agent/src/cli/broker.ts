/**
 * physcap broker serve | enrol: the credentials broker a fleet's operator
 * runs where the S3 keys are, so that hosts copy their captures with a
 * token of their own and no keys (docs/fleet-broker.md).  The broker's
 * code (and the SDK it loads) is imported only when it is served.
 */
import type { Command } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { enrolHost } from '../destinations/s3/broker/hosts';
import { isLoopback } from '../destinations/s3/broker/protocol';
import type { CredentialSource } from '../destinations/s3/credentials';
import { parseS3Url } from '../destinations/s3/target';
import type { Cli } from './shared';

/** sysexits' EX_USAGE and EX_CONFIG. */
const USAGE = 64;
const CONFIG = 78;

/** host:port or [v6]:port. */
export function parseListen(v: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(v);
  if (!m || Number(m[3]) > 65535) return undefined;
  return { host: (m[1] ?? m[2])!, port: Number(m[3]) };
}

interface ServeOptions {
  listen: string;
  dest: string;
  endpoint?: string;
  credentials?: string;
  s3Region: string;
  hosts: string;
  tlsCert?: string;
  tlsKey?: string;
}

export function registerBroker(program: Command, cli: Cli): void {
  const broker = program
    .command('broker')
    .description('the credentials broker: hosts copy captures to an S3 bucket holding a token each, never the keys (docs/fleet-broker.md)');

  broker
    .command('serve')
    .description('serve the hosts of a hosts file: metadata requests done here, presigned URLs for the bytes, each host within <prefix>/<host>/ only')
    .requiredOption('--dest <s3-url>', 's3://bucket/prefix: the hosts write below <prefix>/<host>/')
    .requiredOption('--hosts <file>', 'the hosts file (mode 0600): lines "<host> <sha256 hex of its token>", read again when it changes')
    .option('--listen <host:port>', 'where to listen: loopback over plain HTTP; any address only with --tls-cert and --tls-key', '127.0.0.1:8741')
    .option('--endpoint <url>', 'the S3-compatible endpoint, as the hosts reach it (presigned URLs name it); default: AWS')
    .option('--credentials <file>', 'the store keys: an AWS credentials file (mode 0600); default: the environment, else the SDK chain')
    .option('--s3-region <region>', 'the region requests are signed for', 'us-east-1')
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM)')
    .option('--tls-key <file>', '... and this private key (PEM, mode 0600)')
    .addHelpText('after', '\nOne JSON line per request on stderr (host, op, key, status).  SIGTERM/SIGINT stop it.')
    .action(async (o: ServeOptions) => {
      const where = parseS3Url(o.dest);
      const listen = parseListen(o.listen);
      const usage = (msg: string) => {
        cli.err(`physcap broker: ${msg}\n`);
        cli.setCode(USAGE);
      };
      if (!where || !where.bucket) return usage(`--dest ${o.dest}: not s3://bucket/prefix`);
      if (!listen) return usage(`--listen ${o.listen}: not host:port`);
      if (Boolean(o.tlsCert) !== Boolean(o.tlsKey)) return usage('--tls-cert and --tls-key go together');
      if (!o.tlsCert && !isLoopback(listen.host))
        return usage(
          `--listen ${o.listen}: plain HTTP on an address other machines reach would carry tokens in clear: listen on 127.0.0.1, or give --tls-cert and --tls-key`,
        );
      const credentials: CredentialSource = o.credentials
        ? { file: path.resolve(o.credentials), profile: 'default' }
        : process.env.AWS_ACCESS_KEY_ID
          ? 'env'
          : 'chain';
      const endpoint = (o.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL)?.replace(/\/+$/, '');
      let server: import('../destinations/s3/broker/server').Broker;
      try {
        const tls = o.tlsCert ? { cert: fs.readFileSync(o.tlsCert), key: fs.readFileSync(o.tlsKey!) } : undefined;
        const { Broker } = await import('../destinations/s3/broker/server');
        server = new Broker({
          where,
          endpoint,
          region: o.s3Region,
          credentials,
          hostsFile: path.resolve(o.hosts),
          listen,
          ...(tls ? { tls } : {}),
          log: (e) => cli.err(`${JSON.stringify(e)}\n`),
        });
      } catch (err) {
        cli.err(`physcap broker: ${(err as Error).message}\n`);
        return cli.setCode(CONFIG);
      }
      try {
        await server.start();
      } catch (err) {
        cli.err(`physcap broker: --listen ${o.listen}: ${(err as Error).message}\n`);
        await server.close();
        return cli.setCode(USAGE);
      }
      const problem = await server.checkStore();
      cli.err(
        `${JSON.stringify(problem ? { msg: 'the store fails its pre-flight check; serving anyway', error: problem } : { msg: 'the store passed its pre-flight check' })}\n`,
      );
      await new Promise<void>((resolve) => {
        process.once('SIGTERM', () => resolve());
        process.once('SIGINT', () => resolve());
      });
      await server.close();
      cli.err(`${JSON.stringify({ msg: 'broker stopped' })}\n`);
    });

  broker
    .command('enrol')
    .description('enrol a host: a new random token in a new 0600 file for the host, its digest appended to the hosts file')
    .argument('<host>', 'the host name its captures are filed under (its hostname; characters other than letters, digits, ".", "_", "-" as "_")')
    .requiredOption('--hosts <file>', 'the hosts file (created 0600 if missing)')
    .requiredOption('--token-file <file>', 'where to write the token (a new file: never over one); install it on the host as a 0600 file')
    .option('--another', 'add a token for a host the file already has (to replace the old one: remove its line after)')
    .action((host: string, o: { hosts: string; tokenFile: string; another?: boolean }) => {
      try {
        enrolHost({ host, hostsFile: path.resolve(o.hosts), tokenFile: path.resolve(o.tokenFile), another: o.another });
      } catch (err) {
        cli.err(`physcap broker enrol: ${(err as Error).message}\n`);
        return cli.setCode(1);
      }
      cli.out(
        `enrolled ${host}: its token is in ${o.tokenFile} (mode 0600), its digest in ${o.hosts}\n` +
          `  on ${host}, install the token as a 0600 file of the agent's user, and in the profile's destination:\n` +
          `    credentials: { broker: https://<broker>:<port>, token_file: /etc/physcap/broker.token }\n`,
      );
    });
}
