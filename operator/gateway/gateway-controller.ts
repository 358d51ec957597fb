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
import type { Informer } from '../../kube/informer.js';
import { Resources } from '../../kube/kinds.js';
import type { Manager } from '../../kube/manager.js';
import { desiredGateway } from '../assignment/routes.js';
import type { Home } from '../home.js';

export function setupGatewayController(mgr: Manager, home: () => Home): GatewayReconciler {
  const { namespace } = home().gateway;
  const gateways = mgr.cache(Resources.Gateway, { namespace, labelSelector: MANAGED_SELECTOR });
  const reconciler = new GatewayReconciler(mgr.client, gateways, home);
  mgr
    .controller(reconciler.name)
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
  ) {}

  allKeys(): string[] {
    const { namespace, name } = this.home().gateway;
    return [`${namespace}/${name}`];
  }

  async reconcile(_key: string, log: Logger): Promise<ReconcileResult | void> {
    const desired = desiredGateway(this.home());
    const observed = this.gateways.get(desired.metadata.name, desired.metadata.namespace);
    if (await applyIfChanged(this.client, GATEWAY_FIELD_MANAGER, desired, observed, log))
      log.info('gateway applied');
  }
}
