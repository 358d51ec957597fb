import { ConfigError, nodeAgentConfigFromOptions, portalConfigFromOptions } from './config.js';

const noFiles = (p: string): string => {
  throw new Error(`ENOENT: ${p}`);
};

describe('pcloud portal serve configuration', () => {
  it('takes every default from the flag table', () => {
    const c = portalConfigFromOptions({ peer: 'carol', cookieSecret: 'x'.repeat(32) }, noFiles);
    expect(c).toMatchObject({
      peer: 'carol',
      namespace: 'personal-cloud-system',
      signingKeySecret: 'portal-signing-key',
      host: '0.0.0.0',
      port: 8080,
      secureCookies: true,
      grantDurations: [900, 3600],
      maxGrantsPerPeer: 10,
      sessionSeconds: 900,
      loginRateLimit: { max: 10, windowMs: 60_000 },
      grantRateLimit: { max: 20, windowMs: 60_000 },
      trustProxy: [],
      sampleIntervalMs: 60_000,
    });
    expect(c).not.toHaveProperty('tls');
    expect(c).not.toHaveProperty('ownerToken');
  });

  it('reads the TLS files it is given', () => {
    const c = portalConfigFromOptions(
      { peer: 'carol', cookieSecret: 'x'.repeat(32), tlsCert: '/c.pem', tlsKey: '/k.pem' },
      (p) => `pem of ${p}`,
    );
    expect(c.tls).toEqual({ cert: 'pem of /c.pem', key: 'pem of /k.pem' });
  });

  it.each([
    [{ peer: '' }, '--peer (or PCLOUD_PEER) is required'],
    [{ peer: 'Carol' }, '--peer: peer name "Carol" must be a DNS-1123 label'],
    [
      { peer: 'carol', cookieSecret: 'short' },
      '--cookie-secret (or PCLOUD_COOKIE_SECRET) must be at least 32 characters',
    ],
    [{ grantDurations: '900,soon' }, '--grant-durations must be whole seconds'],
    [{ grantDurations: '0' }, '--grant-durations must be whole seconds'],
    [{ loginRate: '10' }, '--login-rate must be <attempts>/<seconds> such as 10/60, got 10'],
    [{ grantRate: '0/60' }, '--grant-rate must be <attempts>/<seconds>'],
    [{ tlsCert: '/c.pem' }, '--tls-cert and --tls-key go together'],
    [{ tlsCert: '/c.pem', tlsKey: '/k.pem' }, '--tls-cert /c.pem is unreadable'],
    [{ insecureCookies: 'yes' }, '--insecure-cookies must be true or false, got yes'],
    [{ listenPort: '70000' }, '--listen-port must be a port number, got 70000'],
    [{ maxGrants: '0' }, '--max-grants must be a positive integer'],
  ])('refuses %j naming the flag', (raw, message) => {
    const run = () =>
      portalConfigFromOptions({ peer: 'carol', cookieSecret: 'x'.repeat(32), ...raw }, noFiles);
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(message);
  });
});

describe('the node agent on the chief', () => {
  const base = {
    nodeName: 'n1',
    resyncInterval: '30',
    metricsPort: '0',
    metricsHost: '127.0.0.1',
    logLevel: 'info',
  };
  it('realises grants only on the chief node', () => {
    expect(nodeAgentConfigFromOptions({ ...base, chiefNode: 'n1' }).grants).toEqual({
      range: { first: 40000, last: 40999 },
      maxSeconds: 3600,
    });
    expect(nodeAgentConfigFromOptions({ ...base, chiefNode: 'n2' })).not.toHaveProperty('grants');
    expect(nodeAgentConfigFromOptions(base)).not.toHaveProperty('grants');
  });
  it('refuses a bad port range', () => {
    expect(() => nodeAgentConfigFromOptions({ ...base, chiefNode: 'n1', grantPorts: '40000' })).toThrow(
      '--grant-ports must be a port range such as 40000-40999, got 40000',
    );
  });
});
