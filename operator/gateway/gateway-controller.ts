/**
 * GatewayReconciler: the home's one Gateway (`--gateway-namespace/--gateway-name`,
 * class `--gateway-class`), with an HTTP listener and a TLS passthrough listener for
 * the hosted VMs' hostnames. The hosted Assignment controller's routes attach to it.
 */
import type { Logger } from 'pino';
import { GATEWAY_FIELD_MANAGER, MANAGED_SELECTOR } from '../../api/labels.js';
import { applyIfChanged } from '../../kube/apply.js';
import type { KubeApi, KubeObject } from '../../kube/client.js';
import type { ReconcileResult, Reconciler } from '../../kube/controller.js';
import type { Informer, ObjectCache } from '../../kube/informer.js';
import { Resources } from '../../kube/kinds.js';
import type { Manager } from '../../kube/manager.js';
import { desiredGateway } from '../assignment/routes.js';
import type { Home } from '../home.js';

export function setupGatewayController(mgr: Manager, home: () => Home): GatewayReconciler {
  const { namespace } = home().gateway;
  const gateways = mgr.cache(Resources.Gateway, { namespace, labelSelector: MANAGED_SELECTOR });
  // The namespace is not ours to create (docs/operator.md "First run"): while it is
  // missing the manager reports that (/readyz, one error line, an Event) and the Gateway
  // waits for it here instead of failing and backing off.
  const namespaces = mgr.namespaceCache(namespace);
  const reconciler = new GatewayReconciler(mgr.client, gateways, home, namespaces);
  mgr
    .controller(reconciler.name)
    .watches(Resources.Namespace, () => reconciler.allKeys(), {
      fieldSelector: `metadata.name=${namespace}`,
    })
    .for(Resources.Gateway, {
      namespace,
      labelSelector: MANAGED_SELECTOR,
      predicate: (g) => g.metadata?.name === home().gateway.name,
    })
    .withOptions({ workers: 1 })
    .complete(reconciler);
  return reconciler;
}

export class GatewayReconciler implements Reconciler {
  readonly name = 'gateway';

  constructor(
    private readonly client: KubeApi,
    private readonly gateways: Informer<KubeObject>,
    private readonly home: () => Home,
    private readonly namespaces?: ObjectCache<KubeObject>,
  ) {}

  allKeys(): string[] {
    const { namespace, name } = this.home().gateway;
    return [`${namespace}/${name}`];
  }

  async reconcile(_key: string, log: Logger): Promise<ReconcileResult | void> {
    const desired = desiredGateway(this.home());
    const ns = this.namespaces?.get(desired.metadata.namespace ?? '');
    if (this.namespaces && (!ns || ns.metadata?.deletionTimestamp)) return;
    const observed = this.gateways.get(desired.metadata.name, desired.metadata.namespace);
    if (await applyIfChanged(this.client, GATEWAY_FIELD_MANAGER, desired, observed, log))
      log.info('gateway applied');
  }
}
