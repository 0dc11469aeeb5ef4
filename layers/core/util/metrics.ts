import { logContext, logs } from './log.ts';

/**
 * Operational metrics as CloudWatch Embedded Metric Format (EMF) lines: one JSON object on stdout
 * that CloudWatch Logs turns into a metric datapoint, with no API call, no client and no AWS
 * import — on the local stack the same line is simply a log line. The alarms (infra/stacks) are
 * on these names; the contract with them:
 *
 * | name | unit | dimensions | emitted by |
 * |---|---|---|---|
 * | `LeaseEventLagSeconds` | Seconds | Service | the sweeper, every run: how overdue the oldest due UNDONE lease event is |
 * | `CallbackFailures` | Count | Service | wherever a Step Functions task-token answer fails |
 * | `AgentSiteSilentSeconds` | Seconds | Service, Site | the sweeper, per site with an agent token |
 * | `NotificationFailures` | Count | Service | wherever a lease or node notification is not published |
 *
 * Namespace `Slipway`; `Service` is the function's purpose (`POWERTOOLS_SERVICE_NAME`, e.g.
 * `sweeper`, `agent`), `slipway` where none is set (the local stack). Each line also carries the
 * invocation's request and trace ids (as properties, not dimensions), so a datapoint leads to
 * its logs.
 *
 * NOTE(C): not Powertools Metrics (16 kB minified per bundle, measured): it buffers until the
 * handler ends and needs its middleware on every entry to flush, where these few signals are
 * written at once, one line each, and survive a handler that crashes after emitting them.
 */
export const METRIC_NAMESPACE = 'Slipway';

export type MetricName = 'LeaseEventLagSeconds' | 'CallbackFailures' | 'AgentSiteSilentSeconds' | 'NotificationFailures';
export type MetricUnit = 'Seconds' | 'Count';

/** Where EMF lines go: stdout, or what a test installs. */
export type MetricSink = (line: string) => void;

/**
 * On Lambda, stdout (CloudWatch Logs extracts the datapoints). Elsewhere the same lines only at
 * debug level: the local stack's sweeper would otherwise print one every minute.
 */
const stdout: MetricSink = (line) => {
  if (process.env.AWS_LAMBDA_FUNCTION_NAME || logs('debug')) process.stdout.write(`${line}\n`);
};
let sink: MetricSink = stdout;

/** Installs another sink (tests read the lines); `undefined` puts stdout back. */
export function setMetricSink(next: MetricSink | undefined): void {
  sink = next ?? stdout;
}

/** The EMF document of one datapoint (exported for the tests that read it back). */
export function emfLine(name: MetricName, value: number, unit: MetricUnit, dimensions: Record<string, string> = {}, at: Date = new Date()): string {
  const context = logContext();
  const service = typeof context.service === 'string' && context.service !== '' ? context.service : 'slipway';
  const dims: Record<string, string> = { Service: service, ...dimensions };
  return JSON.stringify({
    ...context,
    _aws: {
      Timestamp: at.getTime(),
      CloudWatchMetrics: [{ Namespace: METRIC_NAMESPACE, Dimensions: [Object.keys(dims)], Metrics: [{ Name: name, Unit: unit }] }],
    },
    ...dims,
    [name]: value,
  });
}

/**
 * Emits one datapoint now. Never throws: a metric that cannot be written must not fail the work
 * it measures.
 *
 * @example
 * metric('CallbackFailures', 1, 'Count');
 * metric('AgentSiteSilentSeconds', 420, 'Seconds', { Site: 'site1' });
 */
export function metric(name: MetricName, value: number, unit: MetricUnit, dimensions?: Record<string, string>): void {
  if (!Number.isFinite(value)) return;
  try {
    sink(emfLine(name, value, unit, dimensions));
  } catch {
    // stdout closed (a process shutting down): nothing to tell anyone.
  }
}
