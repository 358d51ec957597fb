/**
 * The typed configuration of a home set up with Pulumi (deploy/pulumi), and its checks.
 *
 * One home: its peer name and domain, the home LAN tenants may never reach, the units it
 * offers (its Offer), what it wants hosted elsewhere (its Requests, by name), extra Helm
 * values for the chart, and the federation join kubeconfig. `validateHomeConfig` turns it
 * into what the program creates, or throws a HomeConfigError listing every problem, each
 * naming its config field. The Offer and the Requests are checked by the same code as
 * `pcloud match` (matchmaker/manifests/validate.ts: the CRDs' schema and CEL rules, in
 * the API server's words), the chart values by the chart's own values.schema.json, so a
 * mistake is reported before anything is sent to the cluster.
 *
 * Pure: reads the CRDs and the chart's values files, nothing else.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { peerNameProblem } from '../../api/federation.js';
import type { Bandwidth, OfferSpec, RequestSpec, UnitSize } from '../../generated/personalcloud.js';
import { API_VERSION, manifestErrors } from '../../matchmaker/manifests/validate.js';
import { parseJoinKubeconfig } from '../../operator/federation/join.js';
import { parseCidr } from '../../operator/network-address.js';

/** A Request of this home: its spec without `peer`, which is the home's. */
export type HomeRequest = Omit<RequestSpec, 'peer'>;

export interface HomeConfig {
  /** This home's name in the federation (a DNS-1123 label): the chart's `peer`, the Offer's and Requests' `spec.peer`. */
  peer: string;
  /** Hosted VMs are `<vm>.<peer>.<domain>`: the chart's `homeDomain`. */
  domain: string;
  /** CIDRs tenant VMs may never reach (the chart's `homeLAN`); default the chart's (every private IPv4 range). */
  homeLan?: string[];
  /** How many units this home offers to other homes (its Offer's `spec.units`); 0 offers nothing. */
  units: number;
  /** The size of one unit (the Offer's `spec.unit` and the chart's `unit`); default the chart's. */
  unit?: UnitSize;
  /** Bandwidth cap of each hosted VM (the Offer's `spec.bandwidth`); default 10M each way. */
  bandwidth?: Bandwidth;
  /** Homes this one never hosts for (the Offer's `spec.excludePeers`). */
  excludePeers?: string[];
  /** What this home wants hosted elsewhere: Request name -> its spec (without `peer`). */
  requests?: Record<string, HomeRequest>;
  /** More Helm values for the chart (see docs/install.md), merged over its values.yaml. */
  chartValues?: Record<string, unknown>;
  /**
   * The federation join kubeconfig's text (`pcloud federation invite` at the matchmaker),
   * stored as the Secret personal-cloud-system/federation-join, checked as `pcloud
   * federation join` checks it. Omit it to run a home that has not joined yet. Keep it a
   * Pulumi secret (`pulumi config set --secret`): the program stores it as one.
   */
  joinKubeconfig?: string;
  /** The chart folder; default the repository's charts/personal-cloud. */
  chartPath?: string;
  /**
   * Wait until the chart's workloads are ready (helm --wait) before creating the Offer and
   * Requests. Default true; false on a cluster that cannot run them (a bare control plane).
   */
  waitForReady?: boolean;
}

/** What the program creates from a valid HomeConfig. */
export interface HomePlan {
  peer: string;
  chartPath: string;
  /** The values given to the chart (the config's over chartValues; helm adds values.yaml). */
  chartValues: Record<string, unknown>;
  offer: { name: string; spec: OfferSpec };
  requests: { name: string; spec: RequestSpec }[];
  /** The join kubeconfig's text, when given. */
  joinKubeconfig?: string;
  waitForReady: boolean;
}

export class HomeConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid Personal Cloud home config:\n  - ${problems.join('\n  - ')}`);
    this.name = 'HomeConfigError';
  }
}

/** Chart values the typed config owns: setting them in chartValues too would give two answers. */
const OWNED_VALUES: Record<string, string> = {
  peer: 'peer',
  homeDomain: 'domain',
  homeLAN: 'homeLan',
  unit: 'unit',
};

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown): string => JSON.stringify(v) ?? String(v);

/** The chart folder: the first charts/personal-cloud above this module (a checkout's, or dist's parent). */
export function defaultChartPath(start = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = start; ; dir = dirname(dir)) {
    const chart = join(dir, 'charts', 'personal-cloud');
    if (existsSync(join(chart, 'Chart.yaml'))) return chart;
    if (dirname(dir) === dir) throw new Error(`no charts/personal-cloud/Chart.yaml above ${start}`);
  }
}

/**
 * Helm's coalescing of values: maps merge key by key, anything else replaces, and null
 * deletes the key (`--set key=null`).
 */
export function coalesceValues(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === null) delete out[k];
    else if (isObject(v) && isObject(out[k])) out[k] = coalesceValues(out[k], v);
    else out[k] = v;
  }
  return out;
}

function chartValueErrors(chartPath: string, values: Record<string, unknown>): string[] {
  const defaults = parse(readFileSync(join(chartPath, 'values.yaml'), 'utf8')) as Record<string, unknown>;
  const schemaFile = join(chartPath, 'values.schema.json');
  if (!existsSync(schemaFile)) return [];
  const { $schema: _ignored, ...schema } = JSON.parse(readFileSync(schemaFile, 'utf8')) as Record<
    string,
    unknown
  >;
  const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
  if (validate(coalesceValues(defaults, values))) return [];
  return (validate.errors ?? []).map((e) => {
    const at = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
    const owner = OWNED_VALUES[at.split('.')[0] ?? ''];
    const field = owner ?? (at ? `chartValues.${at}` : 'chartValues');
    return `${field}: ${e.message ?? e.keyword} (the chart's values.schema.json, at /${e.instancePath.replace(/^\//, '')})`;
  });
}

/**
 * The API server's complaints about one of our objects, each led by the config field:
 * `spec.x` becomes `<prefix>x`; anything else (the name) is said of the object.
 */
function objectErrors(kind: 'Offer' | 'Request', name: string, spec: unknown, prefix: string): string[] {
  const { errors } = manifestErrors({ apiVersion: API_VERSION, kind, metadata: { name }, spec });
  const whole = prefix ? prefix.slice(0, -1) : kind;
  return errors.map((e) =>
    e.startsWith('spec.') ? `${prefix}${e.slice('spec.'.length)}` : `${whole}: ${e}`,
  );
}

/** Checks a home's config and says what to create; throws a HomeConfigError naming every bad field. */
export function validateHomeConfig(config: HomeConfig): HomePlan {
  const problems: string[] = [];
  const peer = config.peer;
  let peerOk = false;
  if (typeof peer !== 'string' || peer === '')
    problems.push("peer: required (this home's name in the federation, e.g. alice)");
  else {
    const p = peerNameProblem(peer);
    if (p) problems.push(`peer: ${p}`);
    peerOk = p === undefined;
  }
  const domain = config.domain;
  if (typeof domain !== 'string' || domain === '')
    problems.push('domain: required (hosted VMs are <vm>.<peer>.<domain>)');
  else if (!DNS_SUBDOMAIN.test(domain) || domain.length > 200)
    problems.push(
      `domain: must be a DNS subdomain of at most 200 characters (e.g. alice.example.org), got ${show(domain)}`,
    );
  if (config.homeLan !== undefined) {
    if (!Array.isArray(config.homeLan))
      problems.push(`homeLan: must be a list of IPv4 CIDRs, got ${show(config.homeLan)}`);
    else if (config.homeLan.length === 0)
      problems.push(
        'homeLan: may not be empty (it would remove the home-LAN deny from every tenant); omit it for every private range',
      );
    else
      config.homeLan.forEach((c, i) => {
        if (typeof c !== 'string' || !parseCidr(c))
          problems.push(
            `homeLan[${i}]: ${show(c)} is not an IPv4 CIDR with zero host bits (e.g. 192.168.1.0/24)`,
          );
      });
  }

  const chartPath = config.chartPath ?? defaultChartPath();
  const chartDefaults = existsSync(join(chartPath, 'values.yaml'))
    ? (parse(readFileSync(join(chartPath, 'values.yaml'), 'utf8')) as { unit?: UnitSize })
    : undefined;
  if (!chartDefaults) problems.push(`chartPath: ${chartPath} has no values.yaml (not a Helm chart folder)`);
  const unit = config.unit ?? chartDefaults?.unit;

  const name = typeof peer === 'string' ? peer : '';
  const offerSpec: OfferSpec = {
    peer: name,
    units: config.units,
    ...(unit !== undefined ? { unit } : {}),
    ...(config.bandwidth !== undefined ? { bandwidth: config.bandwidth } : {}),
    ...(config.excludePeers !== undefined ? { excludePeers: config.excludePeers } : {}),
  } as OfferSpec;
  if (config.units === undefined)
    problems.push('units: required (how many units this home offers; 0 offers nothing)');
  // (peer is checked above; without a chart there is no default unit, which chartPath says)
  else
    problems.push(
      ...objectErrors('Offer', peerOk ? name : 'offer', offerSpec, '').filter(
        (e) => !e.startsWith('peer') && !(unit === undefined && e.startsWith('unit:')),
      ),
    );

  const requests: { name: string; spec: RequestSpec }[] = [];
  if (config.requests !== undefined && !isObject(config.requests))
    problems.push(`requests: must be a map from Request name to its spec, got ${show(config.requests)}`);
  else
    for (const [reqName, req] of Object.entries(config.requests ?? {})) {
      const field = `requests.${reqName}.`;
      if (!isObject(req)) {
        problems.push(
          `requests.${reqName}: must be a Request spec (units, vm, placement...), got ${show(req)}`,
        );
        continue;
      }
      if ('peer' in req) {
        problems.push(`${field}peer: not allowed: a home's Requests are its own (the peer config)`);
        continue;
      }
      const spec = { peer: name, ...req };
      const errs = objectErrors('Request', reqName, spec, field).filter((e) => !e.startsWith(`${field}peer`));
      problems.push(...errs);
      requests.push({ name: reqName, spec });
    }

  const chartValues: Record<string, unknown> = {};
  if (config.chartValues !== undefined && !isObject(config.chartValues))
    problems.push(`chartValues: must be a map of Helm values, got ${show(config.chartValues)}`);
  else {
    for (const [k, field] of Object.entries(OWNED_VALUES))
      if (config.chartValues && k in config.chartValues)
        problems.push(
          `chartValues.${k}: set it with the ${field} config instead (one place for each setting)`,
        );
    Object.assign(chartValues, config.chartValues ?? {}, {
      peer: name,
      homeDomain: domain,
      ...(config.homeLan !== undefined ? { homeLAN: config.homeLan } : {}),
      ...(unit !== undefined ? { unit } : {}),
    });
  }
  if (config.joinKubeconfig !== undefined) {
    if (typeof config.joinKubeconfig !== 'string')
      problems.push(`joinKubeconfig: must be the join kubeconfig's text, got ${show(config.joinKubeconfig)}`);
    else
      try {
        const joined = parseJoinKubeconfig(config.joinKubeconfig, 'joinKubeconfig').peer;
        if (peerOk && joined !== peer)
          problems.push(`joinKubeconfig: it joins the federation as peer ${joined}, but peer is ${peer}`);
      } catch (err) {
        problems.push((err as Error).message); // "joinKubeconfig: ..." naming what is wrong in it
      }
  }
  if (config.waitForReady !== undefined && typeof config.waitForReady !== 'boolean')
    problems.push(`waitForReady: must be true or false, got ${show(config.waitForReady)}`);
  // The chart's schema sees what helm would: only when the fields above are sound, so one
  // mistake is not reported twice.
  if (problems.length === 0 && chartDefaults) problems.push(...chartValueErrors(chartPath, chartValues));
  if (problems.length > 0) throw new HomeConfigError(problems);
  return {
    peer: name,
    chartPath,
    chartValues,
    offer: { name, spec: offerSpec },
    requests,
    ...(config.joinKubeconfig !== undefined ? { joinKubeconfig: config.joinKubeconfig } : {}),
    waitForReady: config.waitForReady ?? true,
  };
}
