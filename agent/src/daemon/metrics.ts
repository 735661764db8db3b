/**
 * Optional Prometheus metrics (agent.yaml `metrics_listen: host:port`):
 * captures by result, bytes, durations, trigger events by kind and fate,
 * the time of the last complete capture, and the copies to remote
 * destinations (bytes, parts, retries, results).
 */
import * as http from 'node:http';
import { AddressInfo } from 'node:net';

import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly captures = new Counter({
    name: 'physcap_captures_total',
    help: 'Captures by profile and result (complete, failed).',
    labelNames: ['profile', 'result'],
    registers: [this.registry],
  });
  readonly bytes = new Counter({
    name: 'physcap_capture_bytes_total',
    help: 'Bytes written by complete captures.',
    labelNames: ['profile'],
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'physcap_capture_duration_seconds',
    help: 'How long captures took, trigger to durable.',
    labelNames: ['profile'],
    buckets: [0.01, 0.1, 1, 10, 60, 600],
    registers: [this.registry],
  });
  readonly triggers = new Counter({
    name: 'physcap_trigger_events_total',
    help: 'Trigger events by kind and fate (captured, coalesced, refused).',
    labelNames: ['kind', 'fate'],
    registers: [this.registry],
  });
  readonly lastSuccess = new Gauge({
    name: 'physcap_last_success_timestamp_seconds',
    help: 'When the last complete capture of a profile finished.',
    labelNames: ['profile'],
    registers: [this.registry],
  });
  readonly uploadBytes = new Counter({
    name: 'physcap_upload_bytes_total',
    help: 'Bytes on the remote destination by copies (sent, or found there on resumption).',
    labelNames: ['destination'],
    registers: [this.registry],
  });
  readonly uploadParts = new Counter({
    name: 'physcap_upload_parts_total',
    help: 'Parts sent to remote destinations.',
    labelNames: ['destination'],
    registers: [this.registry],
  });
  readonly uploadRetries = new Counter({
    name: 'physcap_upload_retries_total',
    help: 'Remote steps retried after a failure a wait can mend.',
    labelNames: ['destination'],
    registers: [this.registry],
  });
  readonly uploads = new Counter({
    name: 'physcap_uploads_total',
    help: 'Copies of captures to remote destinations by result (verified, failed).',
    labelNames: ['destination', 'result'],
    registers: [this.registry],
  });
  private server?: http.Server;

  /** Serves /metrics on "host:port"; resolves to the port (0 picks one). */
  async listen(address: string): Promise<number> {
    const i = address.lastIndexOf(':');
    const host = address.slice(0, i);
    const port = Number(address.slice(i + 1));
    this.server = http.createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
