/**
 * What the portal reads and writes in its home's API, behind one small interface so the
 * handlers are tested on plain objects and run against the real API server through
 * KubePortalData. The portal's ServiceAccount may read Assignments, Tenants, Offers and
 * Requests, read its signing key Secret, and create, list and delete PortalGrants
 * (charts/personal-cloud/templates/portal.yaml).
 */
import type { Assignment, Offer, PortalGrant, Request, Tenant } from '../generated/personalcloud.js';
import type { KubeApi, KubeObject } from '../kube/client.js';
import type { EventRecorder, EventType } from '../kube/events.js';
import { Resources } from '../kube/kinds.js';

export type AssignmentObject = Assignment & KubeObject;
export type TenantObject = Tenant & KubeObject;
export type GrantObject = PortalGrant & KubeObject;
export type OfferObject = Offer & KubeObject;
export type RequestObject = Request & KubeObject;

export interface PortalData {
  assignments(): Promise<AssignmentObject[]>;
  tenants(): Promise<TenantObject[]>;
  grants(namespace?: string): Promise<GrantObject[]>;
  createGrant(g: GrantObject): Promise<GrantObject>;
  deleteGrant(namespace: string, name: string): Promise<void>;
  offers(): Promise<OfferObject[]>;
  requests(): Promise<RequestObject[]>;
  event(regarding: KubeObject, type: EventType, reason: string, message: string): Promise<void>;
}

export class KubePortalData implements PortalData {
  constructor(
    private readonly client: Pick<KubeApi, 'list' | 'create' | 'delete'>,
    private readonly events: EventRecorder,
  ) {}

  async assignments(): Promise<AssignmentObject[]> {
    return (await this.client.list<AssignmentObject>(Resources.Assignment)).items;
  }
  async tenants(): Promise<TenantObject[]> {
    return (await this.client.list<TenantObject>(Resources.Tenant)).items;
  }
  async grants(namespace?: string): Promise<GrantObject[]> {
    return (await this.client.list<GrantObject>(Resources.PortalGrant, namespace ? { namespace } : {})).items;
  }
  async createGrant(g: GrantObject): Promise<GrantObject> {
    return this.client.create(g);
  }
  async deleteGrant(namespace: string, name: string): Promise<void> {
    await this.client.delete(Resources.PortalGrant, name, namespace);
  }
  async offers(): Promise<OfferObject[]> {
    return (await this.client.list<OfferObject>(Resources.Offer)).items;
  }
  async requests(): Promise<RequestObject[]> {
    return (await this.client.list<RequestObject>(Resources.Request)).items;
  }
  async event(regarding: KubeObject, type: EventType, reason: string, message: string): Promise<void> {
    await this.events.record(regarding, type, reason, message, 'Portal');
  }
}
