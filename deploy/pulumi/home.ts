/**
 * A Personal Cloud home as one Pulumi component: what `helm install` (docs/install.md,
 * step 3), `pcloud federation join` and `kubectl apply` of the Offer and Requests (step 5)
 * do by hand, from one typed HomeConfig (home-config.ts).
 *
 *   Namespace personal-cloud-system      the chart's namespace, which holds the join Secret
 *   helm.v3.Release personal-cloud       the chart, with the config's values
 *   Secret federation-join               the join kubeconfig (a Pulumi secret, encrypted in state)
 *   Offer <peer>, Request <name>...      in personal-cloud-system, after the Release (its CRDs)
 *
 * Why helm.v3.Release and not helm.v4.Chart: Release runs Helm itself (as a library in the
 * provider), so the home is an ordinary Helm release — `helm status`, `helm upgrade` and
 * the Helm steps of docs/install.md work on it, and the two ways can be switched. The
 * chart needs Helm's `lookup` (the portal Secret is made once and kept across upgrades);
 * Chart v4 renders client-side, where lookup sees nothing, so every `pulumi up` would rotate
 * the portal's owner token and no preview would ever be empty. Helm installs the chart's
 * crds/ before its templates, and the Offer and Requests depend on the Release, so their
 * CRDs exist when they are created; like `helm uninstall`, destroying the Release leaves
 * the CRDs (deleting them would delete every Tenant and Assignment of the home). The cost:
 * a preview shows a chart change as one Release diff, not per object.
 */
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { JOIN_SECRET, SYSTEM_NAMESPACE } from '../../api/federation.js';
import { API_VERSION } from '../../generated/personalcloud.js';
import { validateHomeConfig, type HomeConfig } from './home-config.js';

/** The Helm release name: the chart's objects are named after it (docs/install.md uses the same). */
export const RELEASE_NAME = 'personal-cloud';
const MANAGED_BY = {
  'app.kubernetes.io/managed-by': 'pulumi',
  'app.kubernetes.io/part-of': 'personal-cloud',
};

export class PersonalCloudHome extends pulumi.ComponentResource {
  readonly namespace: pulumi.Output<string>;
  /** The Helm release's name, revision and status. */
  readonly release: pulumi.Output<{ name?: string; revision?: number; status: string }>;
  readonly offer: pulumi.Output<string>;
  readonly requests: pulumi.Output<string[]>;
  /** `<namespace>/federation-join`, or undefined without a join kubeconfig. */
  readonly joinSecret: pulumi.Output<string | undefined>;

  constructor(name: string, config: HomeConfig, opts?: pulumi.ComponentResourceOptions) {
    super('personalcloud:index:Home', name, {}, opts);
    // Throws a HomeConfigError naming every bad field before any resource is registered.
    const plan = validateHomeConfig(config);
    const parent = { parent: this };

    const ns = new k8s.core.v1.Namespace(
      `${name}-namespace`,
      { metadata: { name: SYSTEM_NAMESPACE, labels: MANAGED_BY } },
      parent,
    );
    const namespace = ns.metadata.name;

    const release = new k8s.helm.v3.Release(
      `${name}-chart`,
      {
        name: RELEASE_NAME,
        chart: plan.chartPath,
        namespace,
        values: plan.chartValues,
        skipAwait: !plan.waitForReady,
      },
      parent,
    );

    let joinSecret: pulumi.Output<string | undefined> = pulumi.output(undefined);
    if (plan.joinKubeconfig !== undefined) {
      const secret = new k8s.core.v1.Secret(
        `${name}-federation-join`,
        {
          metadata: {
            name: JOIN_SECRET,
            namespace,
            labels: { ...MANAGED_BY, 'personalcloud.io/peer': plan.peer },
          },
          type: 'Opaque',
          // The keys `pcloud federation join` writes (operator/federation/join.ts); a Pulumi
          // secret, so the state holds it encrypted.
          stringData: { kubeconfig: pulumi.secret(plan.joinKubeconfig), peer: plan.peer },
        },
        parent,
      );
      joinSecret = pulumi.interpolate`${secret.metadata.namespace}/${secret.metadata.name}`;
    }

    const afterChart = { parent: this, dependsOn: [release] };
    const offer = new k8s.apiextensions.CustomResource(
      `${name}-offer`,
      {
        apiVersion: API_VERSION,
        kind: 'Offer',
        metadata: { name: plan.offer.name, namespace },
        spec: plan.offer.spec,
      },
      afterChart,
    );
    const requests = plan.requests.map(
      (r) =>
        new k8s.apiextensions.CustomResource(
          `${name}-request-${r.name}`,
          { apiVersion: API_VERSION, kind: 'Request', metadata: { name: r.name, namespace }, spec: r.spec },
          afterChart,
        ),
    );

    this.namespace = namespace;
    this.release = release.status.apply((s) => ({ name: s.name, revision: s.revision, status: s.status }));
    this.offer = offer.metadata.name;
    this.requests = pulumi.all(requests.map((r) => r.metadata.name));
    this.joinSecret = joinSecret;
    this.registerOutputs({
      namespace: this.namespace,
      release: this.release,
      offer: this.offer,
      requests: this.requests,
      joinSecret: this.joinSecret,
    });
  }
}
