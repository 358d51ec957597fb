/**
 * `pcloud match`: Offer and Request manifests in, Assignment manifests out, by the
 * matchmaker's own matching (matchmaker/matching/), so the output is what the
 * matchmaker controller would write for the same objects with every peer present.
 *
 * Each manifest is checked against the CRD as the API server would check it
 * (validate.ts), then placed where the federation controller mirrors it: an Offer or
 * Request of peer P lives in `peer-P` on the matchmaker cluster, whatever namespace it
 * has at home. Two manifests of one kind, peer and name would be one mirrored object:
 * that is bad input. The Assignments are named `<requester>.<request>` in the host's
 * namespace `peer-<host>`, as the controller names them.
 */
import { parseAllDocuments } from 'yaml';
import type { Offer, Request } from '../../generated/personalcloud.js';
import { peerNamespace } from '../../api/federation.js';
import { match, type DesiredAssignment } from '../matching/index.js';
import { InputError } from '../solver/problem.js';
import { validateManifest } from './validate.js';

export interface Manifests {
  offers: Offer[];
  requests: Request[];
}

/** Parses multi-document YAML into Offers and Requests; any bad document is an InputError. */
export function parseManifests(text: string): Manifests {
  const offers: Offer[] = [];
  const requests: Request[] = [];
  const seen = new Map<string, string>();
  parseAllDocuments(text).forEach((doc, x) => {
    const at = `document ${x + 1}`;
    if (doc.errors.length > 0)
      throw new InputError(`${at}: bad YAML (${doc.errors[0]!.message.split('\n')[0]})`);
    const v: unknown = doc.toJS();
    if (v === null || v === undefined) return;
    const o = validateManifest(at, v);
    const id = `${o.kind} ${o.spec.peer}/${o.metadata?.name ?? ''}`;
    const first = seen.get(id);
    if (first)
      throw new InputError(
        `${at}: ${id} is also ${first}: one peer's ${o.kind}s need distinct names (they meet in namespace ${peerNamespace(o.spec.peer)})`,
      );
    seen.set(id, at);
    if (o.kind === 'Offer') offers.push(o);
    else requests.push(o);
  });
  return { offers, requests };
}

/** An object as the federation controller mirrors it into the matchmaker cluster. */
function mirrored<T extends Offer | Request>(o: T): T {
  return { ...o, metadata: { ...o.metadata, namespace: peerNamespace(o.spec.peer) } };
}

/** Offers + Requests -> the Assignments the matchmaker would write with every peer present. */
export function matchManifests({ offers, requests }: Manifests): DesiredAssignment[] {
  const present = new Set([...offers, ...requests].map((o) => o.spec.peer));
  return match({
    present,
    offers: offers.map(mirrored),
    requests: requests.map(mirrored),
    assignments: [],
  }).assignments;
}
