/**
 * What the operator is told at start. The flags, their environment variables and
 * defaults are declared once, in cli/config.ts, which builds this.
 */

export interface UnitSize {
  cpu: string;
  memory: string;
  storage: string;
}

export interface OperatorConfig {
  kubeconfig?: string;
  /** This home's peer name: hosted Assignments are those with spec.host == peer. */
  peer: string;
  homeDomain: string;
  homeLan: string[];
  /** MTU of the tenant networks (the uplink's less the VXLAN overhead). */
  tenantMtu: number;
  /** The cluster's pod and Service CIDRs (tenants reach only DNS there). */
  clusterCidrs: string[];
  unit: UnitSize;
  metricsPort: number;
  metricsHost: string;
  leaderElect: boolean;
  leaseNamespace: string;
  leaseName: string;
  leaseDurationMs: number;
  leaseRenewDeadlineMs: number;
  leaseRetryPeriodMs: number;
  identity: string;
  gatewayNamespace: string;
  gatewayName: string;
  gatewayClass: string;
  /** Ports of the Gateway's HTTP and TLS listeners (Traefik: its entryPoints' ports). */
  gatewayHttpPort: number;
  gatewayTlsPort: number;
  /** The join Secret written by `pcloud federation join`. */
  joinSecret: { namespace: string; name: string };
  /** How often the federation heartbeat Lease is renewed. */
  heartbeatMs: number;
  workers: number;
  logLevel: string;
}
