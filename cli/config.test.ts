import { Command } from 'commander';
import {
  ConfigError,
  configFromOptions,
  matchmakerConfigFromOptions,
  matchmakerOptions,
  operatorOptions,
} from './config.js';

/** Parses argv (and the environment) the way the commands do. */
function parse(options: ReturnType<typeof operatorOptions>, argv: string[]): Record<string, unknown> {
  const cmd = new Command('x').exitOverride();
  for (const o of options) cmd.addOption(o);
  cmd.parse(argv, { from: 'user' });
  return cmd.opts();
}

describe('the operator configuration', () => {
  it('takes every default from the flag table, parsed or not', () => {
    const direct = configFromOptions({ peer: 'alice' });
    const parsed = configFromOptions(parse(operatorOptions(), ['--peer', 'alice']));
    for (const c of [direct, parsed]) {
      expect(c).toMatchObject({
        homeDomain: 'pcloud.home.arpa',
        homeLan: ['192.168.0.0/16'],
        unit: { cpu: '1', memory: '2Gi', storage: '10Gi' },
        metricsPort: 8080,
        leaderElect: true,
        leaseDurationMs: 15_000,
        joinSecret: { namespace: 'personal-cloud-system', name: 'federation-join' },
        heartbeatMs: 10_000,
        workers: 4,
        logLevel: 'info',
        gatewayHttpPort: 80,
        gatewayTlsPort: 443,
      });
    }
  });

  it('reads the environment variable of a flag; the flag wins', () => {
    const saved = process.env.PCLOUD_HEARTBEAT_INTERVAL;
    process.env.PCLOUD_HEARTBEAT_INTERVAL = '3';
    try {
      expect(configFromOptions(parse(operatorOptions(), ['--peer=a'])).heartbeatMs).toBe(3000);
      expect(
        configFromOptions(parse(operatorOptions(), ['--peer=a', '--heartbeat-interval=0.5'])).heartbeatMs,
      ).toBe(500);
    } finally {
      if (saved === undefined) delete process.env.PCLOUD_HEARTBEAT_INTERVAL;
      else process.env.PCLOUD_HEARTBEAT_INTERVAL = saved;
    }
  });

  it.each([
    [{}, '--peer (or PCLOUD_PEER) is required'],
    [{ peer: 'Alice' }, '--peer must be a DNS-1123 label, got Alice'],
    [{ peer: 'a', joinSecret: 'just-a-name' }, '--join-secret must be <namespace>/<name>, got just-a-name'],
    [
      { peer: 'a', heartbeatInterval: '0' },
      '--heartbeat-interval must be a positive number of seconds, got 0',
    ],
    [{ peer: 'a', workers: '0' }, '--workers must be a positive integer, got 0'],
    [{ peer: 'a', unitMemory: '2Gx' }, '--unit-memory'],
    [{ peer: 'a', metricsPort: '70000' }, '--metrics-port must be a port number, got 70000'],
    [{ peer: 'a', homeLan: ['10.0.0.0/33'] }, '--home-lan: 10.0.0.0/33 is not an IPv4 CIDR'],
    [{ peer: 'a', homeLan: [] }, '--home-lan (or PCLOUD_HOME_LAN) is empty'],
    [{ peer: 'a', homeLan: '' }, '--home-lan (or PCLOUD_HOME_LAN) is empty'],
    [{ peer: 'a', homeLan: ' , ' }, '--home-lan (or PCLOUD_HOME_LAN) is empty'],
    [{ peer: 'a', homeLan: ['10.0.0.0'] }, '--home-lan: 10.0.0.0 is not an IPv4 CIDR'],
    [{ peer: 'a', homeLan: ['192.168.1.0/24', 'fd00::/8'] }, '--home-lan: fd00::/8 is not an IPv4 CIDR'],
    [{ peer: 'a'.repeat(64) }, `--peer must be a DNS-1123 label, got ${'a'.repeat(64)}`],
    [{ peer: 'bob_1' }, '--peer must be a DNS-1123 label, got bob_1'],
    [{ peer: 'a', unitCpu: '0' }, '--unit-cpu must be positive, got 0'],
    [{ peer: 'a', unitStorage: '-1Gi' }, '--unit-storage: "-1Gi" is not a Kubernetes quantity'],
    [{ peer: 'a', unitCpu: 'lots' }, '--unit-cpu: '],
    [
      { peer: 'a', leaseNamespace: 'Personal_Cloud' },
      '--lease-namespace must be a namespace name (a DNS-1123 label), got Personal_Cloud',
    ],
    [
      { peer: 'a', gatewayNamespace: 'gw.example' },
      '--gateway-namespace must be a namespace name (a DNS-1123 label), got gw.example',
    ],
    [{ peer: 'a', gatewayHttpPort: '0' }, '--gateway-http-port must be a port number from 1 to 65535, got 0'],
    [{ peer: 'a', gatewayTlsPort: 'https' }, '--gateway-tls-port must be a port number, got https'],
    [
      { peer: 'a', gatewayHttpPort: '8000', gatewayTlsPort: '8000' },
      '--gateway-http-port and --gateway-tls-port must differ',
    ],
  ])('refuses %j naming the flag', (raw, message) => {
    expect(() => configFromOptions(raw)).toThrow(ConfigError);
    expect(() => configFromOptions(raw)).toThrow(message);
  });
});

describe('the matchmaker configuration', () => {
  it('takes every default from the flag table', () => {
    expect(matchmakerConfigFromOptions(parse(matchmakerOptions(), []))).toMatchObject({
      peerGraceMs: 30_000,
      debounceQuietMs: 500,
      debounceMaxMs: 5_000,
      metricsPort: 8081,
      leaseNamespace: 'personal-cloud-system',
      leaseName: 'matchmaker',
      writeConcurrency: 16,
    });
  });

  it.each([
    [{ debounce: '5x' }, '--debounce must be a duration like 30s, 500ms or 2m, got 5x'],
    [{ peerGrace: '0s' }, '--peer-grace must be positive, got 0s'],
    [{ writeConcurrency: '-1' }, '--write-concurrency must be a positive integer, got -1'],
    [{ maxObjectBytes: '1e3x' }, '--max-object-bytes must be a positive integer, got 1e3x'],
    [
      { leaseNamespace: 'Kube System' },
      '--lease-namespace must be a namespace name (a DNS-1123 label), got Kube System',
    ],
  ])('refuses %j naming the flag', (raw, message) => {
    expect(() => matchmakerConfigFromOptions(raw)).toThrow(message);
  });
});
