import { hostname } from 'node:os';
import { Option, type Command } from 'commander';
import {
  matchmakerDefaults,
  runMatchmaker,
  type MatchmakerConfig,
} from '../../matchmaker/controller/matchmaker-controller.js';
import { createLogger } from '../../kube/logger.js';
import { EXIT_BAD_INPUT } from '../exit-codes.js';

/** Parses "30s", "500ms", "2m" or a bare number of seconds into milliseconds. */
export function parseDuration(flag: string, v: unknown): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(v).trim());
  if (!m) throw new Error(`--${flag} must be a duration like 30s, 500ms or 2m, got ${String(v)}`);
  const n = Number(m[1]);
  const ms = m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
  if (!(ms > 0)) throw new Error(`--${flag} must be positive, got ${String(v)}`);
  return Math.round(ms);
}

/** `pcloud matchmaker`: run the matchmaker controller against the matchmaker cluster. */
export function registerMatchmakerCommand(program: Command): void {
  program
    .command('matchmaker')
    .description(
      "run the matchmaker: solve every peer-* namespace's Offers and Requests and write Assignments (every flag also reads the environment variable shown)",
    )
    .addOption(new Option('--kubeconfig <path>', 'kubeconfig of the matchmaker cluster').env('KUBECONFIG'))
    .addOption(
      new Option('--peer-grace <duration>', 'a peer is away when its heartbeat is older than this')
        .env('PCLOUD_PEER_GRACE')
        .default('30s'),
    )
    .addOption(
      new Option('--debounce <duration>', 'quiet time after a change before solving')
        .env('PCLOUD_DEBOUNCE')
        .default('500ms'),
    )
    .addOption(
      new Option('--debounce-max <duration>', 'longest a burst of changes delays a solve')
        .env('PCLOUD_DEBOUNCE_MAX')
        .default('5s'),
    )
    .addOption(
      new Option('--metrics-port <port>', 'port of /metrics, /healthz and /readyz (0 picks a free one)')
        .env('PCLOUD_METRICS_PORT')
        .default('8081'),
    )
    .addOption(
      new Option('--metrics-host <address>', 'address the metrics server listens on').default('0.0.0.0'),
    )
    .option('--no-leader-elect', 'run without a Lease (one replica only)')
    .addOption(
      new Option('--lease-namespace <ns>', 'namespace of the leader-election Lease').default(
        matchmakerDefaults.leaseNamespace,
      ),
    )
    .addOption(
      new Option('--identity <id>', 'leader-election identity of this process').env('PCLOUD_IDENTITY'),
    )
    .addOption(new Option('--log-level <level>', 'pino log level').env('LOG_LEVEL').default('info'))
    .action(async (o: Record<string, unknown>) => {
      let config: MatchmakerConfig;
      try {
        const metricsPort = Number(o.metricsPort);
        if (!Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort > 65535)
          throw new Error(`--metrics-port must be a port number, got ${String(o.metricsPort)}`);
        config = {
          ...matchmakerDefaults,
          kubeconfig: typeof o.kubeconfig === 'string' && o.kubeconfig ? o.kubeconfig : undefined,
          peerGraceMs: parseDuration('peer-grace', o.peerGrace),
          debounceQuietMs: parseDuration('debounce', o.debounce),
          debounceMaxMs: parseDuration('debounce-max', o.debounceMax),
          metricsPort,
          metricsHost: String(o.metricsHost),
          leaderElect: o.leaderElect !== false,
          leaseNamespace: String(o.leaseNamespace),
          identity:
            typeof o.identity === 'string' && o.identity ? o.identity : `${hostname()}-${process.pid}`,
          logLevel: String(o.logLevel),
        };
      } catch (err) {
        process.stderr.write(`pcloud matchmaker: ${(err as Error).message}\n`);
        process.exitCode = EXIT_BAD_INPUT;
        return;
      }
      const log = createLogger(config.logLevel);
      const mm = await runMatchmaker(config, { log });
      await new Promise<void>((resolve) => {
        process.once('SIGTERM', () => resolve());
        process.once('SIGINT', () => resolve());
      });
      await mm.stop();
      log.flush();
    });
}
