/**
 * The program of one home, shared by index.ts (a Pulumi project, `pulumi up`) and the
 * Automation API's inline program (home.int.test.ts): the stack's config -> a
 * PersonalCloudHome -> the stack's outputs.
 */
import * as pulumi from '@pulumi/pulumi';
import { HomeConfigError, validateHomeConfig, type HomeConfig, type HomeRequest } from './home-config.js';
import { PersonalCloudHome } from './home.js';
import type { Bandwidth, UnitSize } from '../../generated/personalcloud.js';

/**
 * A HomeConfig from the stack's Pulumi config (Pulumi.<stack>.yaml), as `pulumi config set`
 * writes it: plain keys for strings and numbers, YAML maps and lists (or JSON text) for
 * the rest, `--secret` for the join kubeconfig. A key of the wrong type fails here with
 * Pulumi's own message naming it; the values are then checked by validateHomeConfig.
 */
export function readHomeConfig(cfg: pulumi.Config = new pulumi.Config()): HomeConfig {
  const optional = <T>(key: string, value: T | undefined): Partial<Record<string, T>> =>
    value === undefined ? {} : { [key]: value };
  return {
    peer: cfg.require('peer'),
    domain: cfg.require('domain'),
    units: cfg.requireNumber('units'),
    ...optional('homeLan', cfg.getObject<string[]>('homeLan')),
    ...optional('unit', cfg.getObject<UnitSize>('unit')),
    ...optional('bandwidth', cfg.getObject<Bandwidth>('bandwidth')),
    ...optional('excludePeers', cfg.getObject<string[]>('excludePeers')),
    ...optional('requests', cfg.getObject<Record<string, HomeRequest>>('requests')),
    ...optional('chartValues', cfg.getObject<Record<string, unknown>>('chartValues')),
    // Read as text to be checked up front; home.ts stores it as a secret again.
    ...optional('joinKubeconfig', cfg.get('joinKubeconfig')),
    ...optional('chartPath', cfg.get('chartPath')),
    ...optional('waitForReady', cfg.getBoolean('waitForReady')),
  };
}

export interface HomeOutputs {
  namespace: pulumi.Output<string>;
  release: PersonalCloudHome['release'];
  offer: pulumi.Output<string>;
  requests: pulumi.Output<string[]>;
  joinSecret: pulumi.Output<string | undefined>;
}

/**
 * The home of this stack's config; its outputs are the stack's outputs. A bad config
 * stops the program with a RunError listing every problem, each naming its field (a
 * RunError is printed without a stack trace). It must be thrown: a program that logged
 * errors and declared nothing would end normally, and the engine would then delete every
 * resource of the home (home.int.test.ts checks that a bad config deletes nothing).
 */
export function homeProgram(cfg: pulumi.Config = new pulumi.Config()): HomeOutputs {
  const config = readHomeConfig(cfg);
  try {
    validateHomeConfig(config);
  } catch (err) {
    if (err instanceof HomeConfigError) throw new pulumi.RunError(err.message);
    throw err;
  }
  const home = new PersonalCloudHome('home', config);
  return {
    namespace: home.namespace,
    release: home.release,
    offer: home.offer,
    requests: home.requests,
    joinSecret: home.joinSecret,
  };
}
