/**
 * Offer and Request manifests checked against the CRDs in `crds/` (the same files the
 * API server is given), so `pcloud match` rejects what `kubectl apply` would, naming
 * the same field in the API server's words:
 *
 *   0. decoding: unknown fields (the API server's strict field validation, kubectl's
 *      default) and metadata of the wrong type stop everything else, as there; null
 *      fields are dropped unless nullable;
 *   1. the OpenAPI schema, by ajv: types, ranges, patterns, enums, required fields, with
 *      the schema's defaults applied as the API server applies them;
 *   2. `x-kubernetes-list-type: set | map`: no duplicate items (or keys);
 *   3. the CEL rules (`x-kubernetes-validations`), each by a hand-written check listed
 *      in CEL_RULES under its exact rule text. Transition rules (`self == oldSelf`,
 *      immutability) apply only to updates and a manifest has no old object, so they
 *      are listed as such. A rule that is in a CRD but not in CEL_RULES is an internal
 *      error, never skipped (a unit test checks that every rule is listed);
 *   4. metadata as the API server checks it: a name that is a DNS-1123 subdomain, a
 *      namespace that is a DNS-1123 label, only ObjectMeta's fields.
 *
 * Like the API server, CEL rules run only on an object that passed its schema; `status`
 * is dropped (it is the status subresource's, reset on create).
 *
 * The CRD files are read at run time from the `crds/` folder above this module (the
 * repository root in a checkout, /app in the image, which copies crds/).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parse } from 'yaml';
import type { Offer, Request } from '../../generated/personalcloud.js';
import { parseMilli } from '../../api/quantity.js';
import { InputError } from '../solver/problem.js';

export const API_VERSION = 'personalcloud.io/v1alpha1';
export const MANIFEST_KINDS = ['Offer', 'Request'] as const;
export type ManifestKind = (typeof MANIFEST_KINDS)[number];

type Json = unknown;
type Schema = Record<string, unknown> & {
  type?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  anyOf?: Schema[];
  additionalProperties?: boolean | Schema;
  'x-kubernetes-validations'?: CelRule[];
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-preserve-unknown-fields'?: boolean;
};
export interface CelRule {
  rule: string;
  message?: string;
  fieldPath?: string;
  reason?: string;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** What a CEL rule checks, given `self` (the defaulted value the rule is attached to). */
interface CelCheck {
  /** A transition rule: needs the old object, so it never applies to a manifest. */
  transition?: true;
  check?: (self: never) => boolean;
}

function positiveQuantity(self: number | string): boolean {
  if (typeof self === 'number') return self > 0;
  try {
    return parseMilli(self) > 0n;
  } catch {
    return false;
  }
}

type Port = { port: number; protocol?: string };
const udp = (p: Port): boolean => p.protocol === 'UDP';

/** Every CEL rule of crds/offers.yaml and crds/requests.yaml, by its exact text. */
export const CEL_RULES: Record<string, CelCheck> = {
  'self == oldSelf': { transition: true },
  '!has(self.excludePeers) || !(self.peer in self.excludePeers)': {
    check: (s: { peer: string; excludePeers?: string[] }) => !s.excludePeers?.includes(s.peer),
  },
  "type(self) == int ? self > 0 : isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))": {
    check: positiveQuantity,
  },
  '!has(self.placement) || !has(self.placement.peers) || self.placement.peers.all(p, p.peer != self.peer)': {
    check: (s: { peer: string; placement?: { peers?: { peer: string }[] } }) =>
      !(s.placement?.peers ?? []).some((p) => p.peer === s.peer),
  },
  '!(has(self.spread) && self.spread && has(self.maxPerPeer) && self.maxPerPeer > 1)': {
    check: (s: { spread?: boolean; maxPerPeer?: number }) => !(s.spread && (s.maxPerPeer ?? 0) > 1),
  },
  '!(has(self.spread) && self.spread && has(self.peers) && self.peers.exists(p, p.max > 1))': {
    check: (s: { spread?: boolean; peers?: { max: number }[] }) =>
      !(s.spread && (s.peers ?? []).some((p) => p.max > 1)),
  },
  "self.all(p, self.filter(q, q.port == p.port && (has(q.protocol) && q.protocol == 'UDP') == (has(p.protocol) && p.protocol == 'UDP')).size() == 1)":
    {
      check: (self: Port[]) =>
        self.every((p) => self.filter((q) => q.port === p.port && udp(q) === udp(p)).length === 1),
    },
};

// --- the CRDs ----------------------------------------------------------------------

/** The `crds/` folder: the first one above this module that holds our CRDs. */
export function crdDir(start = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'crds', 'offers.yaml'))) return join(dir, 'crds');
    if (dirname(dir) === dir) throw new Error(`no crds/offers.yaml above ${start}`);
  }
}

/** The v1alpha1 openAPIV3Schema of one of our CRDs. */
export function crdSchema(kind: ManifestKind, dir = crdDir()): Schema {
  const file = join(dir, `${kind.toLowerCase()}s.yaml`);
  const crd = parse(readFileSync(file, 'utf8')) as {
    spec: { names: { kind: string }; versions: { name: string; schema: { openAPIV3Schema: Schema } }[] };
  };
  if (crd.spec.names.kind !== kind) throw new Error(`${file} defines ${crd.spec.names.kind}, not ${kind}`);
  const version = crd.spec.versions.find((v) => `personalcloud.io/${v.name}` === API_VERSION);
  if (!version) throw new Error(`${file} has no version ${API_VERSION}`);
  return version.schema.openAPIV3Schema;
}

/** Every CEL rule in a schema, with the path of the node it is attached to. */
export function celRules(schema: Schema, path = ''): { path: string; rule: CelRule }[] {
  const own = (schema['x-kubernetes-validations'] ?? []).map((rule) => ({ path, rule }));
  const props = Object.entries(schema.properties ?? {}).flatMap(([k, s]) => celRules(s, `${path}.${k}`));
  const items = schema.items ? celRules(schema.items, `${path}[*]`) : [];
  return [...own, ...props, ...items];
}

/** The schema as ajv validates it: `status` left out (it belongs to the status subresource). */
function withoutStatus(schema: Schema): Schema {
  const { status: _status, ...properties } = schema.properties ?? {};
  return { ...schema, properties };
}

/**
 * Fields the schema does not declare, as the API server's strict decoding finds them
 * (walking objects wherever they are, even under a schema of another type); `metadata`
 * is ObjectMeta's and checked on its own.
 */
function unknownFields(schema: Schema, value: Json, path: string, out: string[]): void {
  if (Array.isArray(value)) {
    value.forEach((item, i) => unknownFields(schema.items ?? {}, item, `${path}[${i}]`, out));
    return;
  }
  if (!isObject(value) || schema['x-kubernetes-preserve-unknown-fields']) return;
  for (const [k, v] of Object.entries(value)) {
    const field = path ? `${path}.${k}` : k;
    if (!path && k === 'metadata') continue;
    const s = schema.properties?.[k];
    if (s) unknownFields(s, v, field, out);
    else if (isObject(schema.additionalProperties)) unknownFields(schema.additionalProperties, v, field, out);
    else if (schema.additionalProperties !== true) out.push(`${field}: field not declared in schema`);
  }
}

/** Object fields set to null are dropped (pruned) unless the schema says nullable, as the API server does. */
function dropNulls(schema: Schema, value: Json): void {
  if (Array.isArray(value)) {
    for (const item of value) dropNulls(schema.items ?? {}, item);
  } else if (isObject(value)) {
    for (const [k, v] of Object.entries(value)) {
      const s = schema.properties?.[k];
      if (v === null && !s?.nullable) delete value[k];
      else if (s) dropNulls(s, v);
    }
  }
}

interface Compiled {
  schema: Schema;
  validate: ValidateFunction;
}
let compiled: Map<ManifestKind, Compiled> | undefined;

function validators(): Map<ManifestKind, Compiled> {
  if (compiled) return compiled;
  const ajv = new Ajv({
    allErrors: true,
    verbose: true,
    useDefaults: true,
    strict: true,
    strictTypes: false,
  });
  for (const k of [
    'x-kubernetes-validations',
    'x-kubernetes-list-type',
    'x-kubernetes-list-map-keys',
    'x-kubernetes-int-or-string',
    'x-kubernetes-preserve-unknown-fields',
    'x-kubernetes-embedded-resource',
  ])
    ajv.addKeyword({ keyword: k }); // checked below (lists, CEL) or by the schema itself
  // range only: a non-integer is already the `type: integer` error
  const int = (bits: number) => (n: number) =>
    !Number.isInteger(n) || (n >= -(2 ** (bits - 1)) && n < 2 ** (bits - 1));
  ajv.addFormat('int32', { type: 'number', validate: int(32) });
  ajv.addFormat('int64', { type: 'number', validate: int(64) });
  ajv.addFormat('date-time', (s: string) => !Number.isNaN(Date.parse(s)) && /^\d{4}-\d\d-\d\dT/.test(s));
  const dir = crdDir();
  compiled = new Map(
    MANIFEST_KINDS.map((kind) => {
      const schema = crdSchema(kind, dir);
      for (const { rule } of celRules(schema))
        if (!CEL_RULES[rule.rule])
          throw new Error(
            `crds/${kind.toLowerCase()}s.yaml: CEL rule not handled by pcloud match: ${rule.rule}`,
          );
      return [kind, { schema, validate: ajv.compile(withoutStatus(schema)) }];
    }),
  );
  return compiled;
}

// --- errors in the API server's words -------------------------------------------------

/** `/spec/vm/ports/0/name` -> `spec.vm.ports[0].name` (indices where the value is a list). */
function fieldPath(root: Json, pointer: string): string {
  let out = '';
  let node: Json = root;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) {
      out += `[${key}]`;
      node = node[Number(key)];
    } else {
      out += out ? `.${key}` : key;
      node = isObject(node) ? node[key] : undefined;
    }
  }
  return out;
}

const show = (v: unknown): string =>
  typeof v === 'string' ? JSON.stringify(v) : (JSON.stringify(v) ?? 'null');
const typeName = (v: unknown): string =>
  Array.isArray(v) ? 'array' : v === null ? 'null' : Number.isInteger(v) ? 'integer' : typeof v;

function describe(root: Json, e: ErrorObject): string {
  const path = fieldPath(root, e.instancePath);
  const at = (p: string): string => (p ? `${p}: ` : '');
  const v = e.data;
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return `${[path, String(p.missingProperty)].filter(Boolean).join('.')}: Required value`;
    case 'type':
      return `${at(path)}Invalid value: ${show(typeName(v))}: ${path} in body must be of type ${String(p.type)}: ${show(typeName(v))}`;
    case 'minimum':
      return `${at(path)}Invalid value: ${show(v)}: ${path} in body should be greater than or equal to ${String(p.limit)}`;
    case 'maximum':
      return `${at(path)}Invalid value: ${show(v)}: ${path} in body should be less than or equal to ${String(p.limit)}`;
    case 'pattern':
      return `${at(path)}Invalid value: ${show(v)}: ${path} in body should match '${String(p.pattern)}'`;
    case 'enum':
      return `${at(path)}Unsupported value: ${show(v)}: supported values: ${(p.allowedValues as unknown[]).map(show).join(', ')}`;
    case 'maxLength':
      return `${at(path)}Too long: may not be more than ${String(p.limit)} bytes`;
    case 'minLength':
      return `${at(path)}Invalid value: ${show(v)}: ${path} in body should be at least ${String(p.limit)} chars long`;
    case 'maxItems':
      return `${at(path)}Too many: ${Array.isArray(v) ? v.length : '?'}: must have at most ${String(p.limit)} items`;
    case 'anyOf':
      return `${at(path)}Invalid value: ${show(v)}: ${path} in body must be an integer or a string`;
    case 'format':
      return `${at(path)}Invalid value: ${show(v)}: ${path} in body must be of type ${String(p.format)}`;
    default:
      return `${at(path)}Invalid value: ${show(v)}: ${e.message ?? e.keyword}`;
  }
}

/** Duplicates in `x-kubernetes-list-type: set | map` lists, as the API server names them on create. */
function listErrors(schema: Schema, data: Json, path: string, out: string[]): void {
  if (Array.isArray(data)) {
    const type = schema['x-kubernetes-list-type'];
    if (type === 'set' || type === 'map') {
      const keys = schema['x-kubernetes-list-map-keys'] ?? [];
      const seen = new Set<string>();
      data.forEach((item, i) => {
        const id =
          type === 'set'
            ? JSON.stringify(item)
            : JSON.stringify(keys.map((k) => (isObject(item) ? item[k] : undefined)));
        if (seen.has(id)) {
          const shown =
            type === 'set'
              ? show(item)
              : JSON.stringify(
                  Object.fromEntries(keys.map((k) => [k, isObject(item) ? item[k] : undefined])),
                );
          out.push(`${path}[${i}]: Duplicate value: ${shown}`);
        }
        seen.add(id);
      });
    }
    if (schema.items) data.forEach((item, i) => listErrors(schema.items!, item, `${path}[${i}]`, out));
  } else if (isObject(data)) {
    for (const [k, s] of Object.entries(schema.properties ?? {}))
      if (k in data) listErrors(s, data[k], path ? `${path}.${k}` : k, out);
  }
}

/** The CEL rules on the (schema-valid, defaulted) object. */
function celErrors(schema: Schema, data: Json, path: string, out: string[]): void {
  if (data === undefined) return;
  for (const rule of schema['x-kubernetes-validations'] ?? []) {
    const known = CEL_RULES[rule.rule];
    if (!known) throw new Error(`CEL rule not handled by pcloud match: ${rule.rule}`);
    if (known.transition || !known.check) continue;
    if ((known.check as (s: unknown) => boolean)(data)) continue;
    const field = path + (rule.fieldPath ?? '');
    const message = rule.message ?? `failed rule: ${rule.rule}`;
    out.push(
      rule.reason === 'FieldValueForbidden'
        ? `${field}: Forbidden: ${message}`
        : `${field}: Invalid value: ${show(typeName(data))}: ${message}`,
    );
  }
  if (Array.isArray(data) && schema.items)
    data.forEach((item, i) => celErrors(schema.items!, item, `${path}[${i}]`, out));
  else if (isObject(data))
    for (const [k, s] of Object.entries(schema.properties ?? {}))
      celErrors(s, data[k], path ? `${path}.${k}` : k, out);
}

// --- metadata --------------------------------------------------------------------------

const OBJECT_META = new Set([
  'name',
  'generateName',
  'namespace',
  'selfLink',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'labels',
  'annotations',
  'ownerReferences',
  'finalizers',
  'managedFields',
]);
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * What decoding the body already refuses, before anything else (the API server answers
 * 400 with these alone): metadata of the wrong JSON type.
 */
function metadataDecodeErrors(meta: Json, out: string[]): void {
  if (meta === undefined || meta === null) return;
  if (!isObject(meta)) {
    out.push(`metadata: Invalid value: ${show(meta)}: must be an object`);
    return;
  }
  for (const k of ['name', 'namespace', 'generateName'])
    if (meta[k] !== undefined && meta[k] !== null && typeof meta[k] !== 'string')
      out.push(`metadata.${k}: Invalid value: ${show(meta[k])}: must be a string (ObjectMeta.${k})`);
  for (const m of ['labels', 'annotations'])
    if (
      meta[m] !== undefined &&
      meta[m] !== null &&
      (!isObject(meta[m]) || Object.values(meta[m]).some((v) => typeof v !== 'string'))
    )
      out.push(`metadata.${m}: Invalid value: ${show(meta[m])}: must be a map of strings (ObjectMeta.${m})`);
}

/** Object-meta validation: a name (a DNS-1123 subdomain), a namespace that is a DNS-1123 label. */
function metadataErrors(meta: Json, out: string[]): void {
  const m = isObject(meta) ? meta : {};
  const name = m.name;
  if (typeof name !== 'string' || name === '')
    out.push('metadata.name: Required value: name or generateName is required');
  else if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name))
    out.push(
      `metadata.name: Invalid value: ${show(name)}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
    );
  const ns = m.namespace;
  if (typeof ns === 'string' && ns !== '' && (ns.length > 63 || !DNS1123_LABEL.test(ns)))
    out.push(
      `metadata.namespace: Invalid value: ${show(ns)}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character`,
    );
}

// --- the entry point -------------------------------------------------------------------

/**
 * Every problem the API server would report for doc, in its words; [] when it is valid.
 * In its order: decoding (unknown fields, metadata of the wrong type) stops at once;
 * then the schema and object meta; then list uniqueness; then the CEL rules.
 */
export function manifestErrors(doc: Record<string, unknown>): { errors: string[]; object?: Offer | Request } {
  const kind = doc.kind as ManifestKind;
  const { validate, schema } = validators().get(kind)!;
  const object = structuredClone(doc);
  delete object.status;
  const decoding: string[] = [];
  metadataDecodeErrors(object.metadata, decoding); // JSON that does not fit ObjectMeta: alone
  if (decoding.length > 0) return { errors: decoding };
  if (isObject(object.metadata))
    for (const k of Object.keys(object.metadata))
      if (!OBJECT_META.has(k)) decoding.push(`metadata.${k}: field not declared in schema`);
  unknownFields(schema, object, '', decoding);
  if (decoding.length > 0) return { errors: decoding };
  dropNulls(schema, object);
  const schemaErrors = validate(object)
    ? []
    : (validate.errors ?? []).filter(
        (e) => !e.schemaPath.includes('/anyOf/'), // anyOf (int-or-string): one error for all branches
      );
  const errors: string[] = [];
  metadataErrors(object.metadata, errors);
  for (const e of schemaErrors) errors.push(describe(object, e));
  if (errors.length === 0) listErrors(schema, object, '', errors);
  if (errors.length === 0) celErrors(schema, object, '', errors);
  return errors.length > 0 ? { errors } : { errors, object: object as unknown as Offer | Request };
}

/**
 * One manifest checked and defaulted as the API server would; an InputError naming the
 * document and every bad field otherwise. `at` names the document in the message.
 */
export function validateManifest(at: string, doc: unknown): Offer | Request {
  if (!isObject(doc)) throw new InputError(`${at}: expected a Kubernetes object, got ${show(doc)}`);
  if (doc.apiVersion !== API_VERSION)
    throw new InputError(
      `${at}: apiVersion: Unsupported value: ${show(doc.apiVersion)}: supported values: "${API_VERSION}"`,
    );
  if (!MANIFEST_KINDS.includes(doc.kind as ManifestKind))
    throw new InputError(
      `${at}: kind: Unsupported value: ${show(doc.kind)}: supported values: "Offer", "Request"`,
    );
  const name = isObject(doc.metadata) && typeof doc.metadata.name === 'string' ? ` ${doc.metadata.name}` : '';
  const { errors, object } = manifestErrors(doc);
  if (!object) throw new InputError(`${at} (${String(doc.kind)}${name}): ${errors.join('; ')}`);
  return object;
}
