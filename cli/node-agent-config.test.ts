import { ConfigError, nodeAgentConfigFromOptions } from './config.js';

describe('pcloud node-agent configuration', () => {
  it("turns the parsed options into the agent's config", () => {
    expect(
      nodeAgentConfigFromOptions({
        nodeName: 'n1',
        resyncInterval: '30',
        metricsPort: '8081',
        metricsHost: '0.0.0.0',
        logLevel: 'info',
      }),
    ).toEqual({
      kubeconfig: undefined,
      nodeName: 'n1',
      resyncMs: 30_000,
      metricsPort: 8081,
      metricsHost: '0.0.0.0',
      logLevel: 'info',
    });
  });

  it.each([
    [{}, '--node-name (or PCLOUD_NODE_NAME) is required'],
    [{ nodeName: 'Node_1' }, '--node-name must be a Node name (a DNS subdomain), got Node_1'],
    [{ nodeName: 'n1', resyncInterval: 'soon' }, '--resync-interval'],
  ])('refuses %j naming the flag', (raw, message) => {
    const run = () =>
      nodeAgentConfigFromOptions({
        resyncInterval: '30',
        metricsPort: '8081',
        metricsHost: '0.0.0.0',
        logLevel: 'info',
        ...raw,
      });
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(message);
  });
});
