/**
 * KubeVirt on a HomeCluster, installed as its users install it (issue 9, item 3): the
 * images of its components built here, pushed to the cluster's registry, upstream's
 * kubevirt-operator.yaml rendered by upstream's own manifest templater, then the
 * `KubeVirt` resource with `useEmulation: true` (this machine has no hardware
 * virtualisation: /dev/kvm is PVM, see ../shared/REAL-PARTS.md).
 *
 * Images (all on one Debian 12 root filesystem that setup built with mmdebstrap, see
 * tools/kubevirt/image.env; upstream builds them from CentOS Stream RPMs with Bazel):
 * - virt-operator, virt-api, virt-controller: their binary, user 1001 as upstream's;
 * - virt-handler: virt-handler, virt-chroot, and qemu-img, nftables, iproute2 from Debian;
 * - virt-launcher: virt-launcher and its helpers (virt-launcher-monitor, virt-probe,
 *   virt-tail, virt-freezer, container-disk, node-labeller.sh), upstream's qemu.conf and
 *   virtqemud.conf, QEMU 7.2 and libvirt 9.0 from Debian, user/group qemu = 107.
 *   Debian 12 builds libvirt without the modular daemons, so /usr/sbin/virtqemud is a
 *   script that runs the monolithic libvirtd (same QEMU driver, same configuration keys)
 *   and points virtqemud's socket name at libvirtd's.
 * - the test guest (hack/guest-image.sh) as a containerDisk: /disk/disk.img.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { BIN_DIR } from './control-plane.js';
import type { HomeCluster } from './home-cluster.js';
import { buildImage, IMAGE_DIR, type BuiltImage } from './images.js';
import { repoRoot } from './paths.js';
import { runCommand } from './run-command.js';

export const KUBEVIRT_VERSION = 'v1.5.0';
export const KUBEVIRT_NAMESPACE = 'kubevirt';
const KV_DIR = join(repoRoot, '.cache', 'kubevirt');
const BASE = join(IMAGE_DIR, 'kubevirt-base', 'rootfs.tar');
const GUEST_DISK = join(IMAGE_DIR, 'guest', 'disk.img');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function need(path: string): string {
  if (!existsSync(path)) throw new Error(`${path} is missing: run 'make setup' first`);
  return path;
}

const bin = (name: string): string => need(join(BIN_DIR, name));

/** /etc/passwd and /etc/group of the base plus KubeVirt's qemu user (107), as files to add. */
function qemuAccounts(): Record<string, string> {
  const dir = join(IMAGE_DIR, 'kubevirt-etc');
  mkdirSync(dir, { recursive: true });
  const out: Record<string, string> = {};
  // qemu (107) is who KubeVirt's qemu.conf runs QEMU as; Debian's libvirtd resolves its
  // built-in default, libvirt-qemu, before it reads qemu.conf, and fails without it.
  for (const [file, lines] of [
    [
      'passwd',
      'qemu:x:107:107:qemu:/home/qemu:/bin/bash\nlibvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin',
    ],
    ['group', 'qemu:x:107:\nlibvirt-qemu:x:64055:'],
  ] as const) {
    const base = execFileSync('tar', ['-xOf', need(BASE), `./etc/${file}`], { encoding: 'utf8' });
    const path = join(dir, file);
    writeFileSync(path, `${base.trimEnd()}\n${lines}\n`);
    out[`/etc/${file}`] = path;
  }
  return out;
}

/** What runs as virtqemud in the launcher: Debian's libvirtd, answering on virtqemud's socket too. */
function virtqemudShim(): string {
  const path = join(IMAGE_DIR, 'kubevirt-etc', 'virtqemud');
  mkdirSync(join(IMAGE_DIR, 'kubevirt-etc'), { recursive: true });
  writeFileSync(
    path,
    [
      '#!/bin/sh',
      "# Debian 12's libvirt has no modular daemons: libvirtd serves the same QEMU driver and reads",
      "# virtqemud.conf's keys. KubeVirt's non-root launcher connects to virtqemud's socket by name.",
      'dir="${XDG_RUNTIME_DIR:-/var/run}/libvirt"',
      '[ "$(id -u)" = 0 ] && dir=/var/run/libvirt',
      'mkdir -p "$dir" && ln -sfn libvirt-sock "$dir/virtqemud-sock"',
      '# -d: libvirtd returns before it listens; virtqemud -d (the node labeller) after.',
      'if [ "$1" = -d ]; then',
      '  /usr/sbin/libvirtd "$@" || exit',
      '  for _ in $(seq 600); do [ -S "$dir/libvirt-sock" ] && exit 0; sleep 0.1; done',
      '  echo "virtqemud: libvirtd is not listening on $dir/libvirt-sock after 60 s" >&2',
      '  tail -20 /var/log/libvirt/libvirtd.log >&2; exit 1',
      'fi',
      'exec /usr/sbin/libvirtd "$@"',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return path;
}

export type KubeVirtComponent =
  'virt-operator' | 'virt-api' | 'virt-controller' | 'virt-handler' | 'virt-launcher';

/** The five component images (tags pcloud.local/kubevirt/<name>:v1.5.0). */
export async function kubevirtImages(): Promise<Record<KubeVirtComponent, BuiltImage>> {
  const tag = (name: string): string => `pcloud.local/kubevirt/${name}:${KUBEVIRT_VERSION}`;
  const accounts = qemuAccounts();
  const plain = (name: 'virt-operator' | 'virt-api' | 'virt-controller'): Promise<BuiltImage> =>
    buildImage({
      tag: tag(name),
      base: need(BASE),
      files: { [`/usr/bin/${name}`]: bin(name) },
      user: '1001',
      entrypoint: [`/usr/bin/${name}`],
    });
  const launcherFiles: Record<string, string> = { ...accounts };
  for (const b of ['virt-launcher', 'virt-launcher-monitor', 'virt-probe', 'virt-tail', 'virt-freezer'])
    launcherFiles[`/usr/bin/${b}`] = bin(b);
  launcherFiles['/usr/bin/container-disk'] = need(join(KV_DIR, 'container-disk'));
  launcherFiles['/usr/bin/node-labeller.sh'] = need(join(KV_DIR, 'node-labeller.sh'));
  launcherFiles['/etc/libvirt/qemu.conf'] = need(join(KV_DIR, 'qemu.conf'));
  launcherFiles['/etc/libvirt/virtqemud.conf'] = need(join(KV_DIR, 'virtqemud.conf'));
  launcherFiles['/etc/libvirt/hooks/qemu'] = need(join(KV_DIR, 'qemu'));
  launcherFiles['/etc/nsswitch.conf'] = need(join(KV_DIR, 'nsswitch.conf'));
  launcherFiles['/usr/sbin/virtqemud'] = virtqemudShim();
  // virt-launcher runs virtlogd -f with it; Debian ships it in libvirt-daemon-system (with
  // systemd units and more), so an empty one: virtlogd's defaults.
  const virtlogdConf = join(IMAGE_DIR, 'kubevirt-etc', 'virtlogd.conf');
  writeFileSync(virtlogdConf, '# virtlogd defaults (libvirt-daemon-system is not installed)\n');
  launcherFiles['/etc/libvirt/virtlogd.conf'] = virtlogdConf;
  return {
    'virt-operator': await plain('virt-operator'),
    'virt-api': await plain('virt-api'),
    'virt-controller': await plain('virt-controller'),
    'virt-handler': await buildImage({
      tag: tag('virt-handler'),
      base: need(BASE),
      files: {
        ...accounts,
        '/usr/bin/virt-handler': bin('virt-handler'),
        '/usr/bin/virt-chroot': bin('virt-chroot'),
        '/etc/nsswitch.conf': need(join(KV_DIR, 'nsswitch.conf')),
      },
      entrypoint: ['/usr/bin/virt-handler'],
    }),
    'virt-launcher': await buildImage({
      tag: tag('virt-launcher'),
      base: need(BASE),
      files: launcherFiles,
      // As upstream's image: the monitor passes it on to virt-launcher and libvirtd as an
      // ambient capability (a non-root launcher), which needs it permitted first.
      caps: { '/usr/bin/virt-launcher-monitor': ['cap_net_bind_service'] },
      // /run, not /var/run: a folder entry under /var/run would replace Debian's symlink.
      dirs: [
        '/run/libvirt',
        '/var/lib/libvirt',
        '/var/log/libvirt/qemu',
        '/home/qemu',
        '/usr/lib64/qemu-kvm',
      ],
      entrypoint: ['/usr/bin/virt-launcher'],
    }),
  };
}

/** The test guest as a containerDisk image (hack/guest-image.sh): boots in seconds, answers HTTP with its name. */
export function guestImage(tag = 'pcloud.local/guest:1'): Promise<BuiltImage> {
  return buildImage({ tag, files: { '/disk/disk.img': need(GUEST_DISK) } });
}

/** Upstream's kubevirt-operator.yaml for images under prefix, rendered by its manifest templater. */
export async function renderOperatorManifest(prefix: string): Promise<string> {
  const templater = bin('manifest-templator');
  const files = await runCommand(templater, [
    '--process-files',
    `--generated-manifests-dir=${need(join(KV_DIR, 'manifests', 'generated'))}`,
    `--input-file=${need(join(KV_DIR, 'manifests', 'release', 'kubevirt-operator.yaml.in'))}`,
  ]);
  if (files.code !== 0) throw new Error(`manifest-templator --process-files: ${files.stderr}`);
  const tmpl = join(KV_DIR, 'kubevirt-operator.yaml.in');
  writeFileSync(tmpl, files.stdout);
  const vars = await runCommand(templater, [
    '--process-vars',
    `--namespace=${KUBEVIRT_NAMESPACE}`,
    `--container-prefix=${prefix}`,
    `--container-tag=${KUBEVIRT_VERSION}`,
    '--image-pull-policy=IfNotPresent',
    // Only the OLM bundle shows it, but the templater reads it whatever it renders.
    `--kubevirt-logo-path=${need(join(KV_DIR, 'kubevirt_logo.png'))}`,
    `--input-file=${tmpl}`,
  ]);
  if (vars.code !== 0) throw new Error(`manifest-templator --process-vars: ${vars.stderr}`);
  // A document that rendered empty (an unset optional part) is dropped.
  return parseAllDocuments(vars.stdout)
    .filter((d) => d.contents !== null)
    .map((d) => d.toString())
    .join('---\n');
}

export interface KubeVirtInstall {
  /** Registry prefix of the component images, e.g. 192.168.214.254:5000/kubevirt. */
  prefix: string;
  /** Milliseconds from applying the KubeVirt resource to its Available condition. */
  deployMs: number;
}

/**
 * Installs KubeVirt into hc: images pushed, kubevirt-operator.yaml applied, then a
 * `KubeVirt` named kubevirt with useEmulation; resolves when it reports Available.
 */
export async function installKubeVirt(hc: HomeCluster, timeoutMs = 900_000): Promise<KubeVirtInstall> {
  // virt-operator creates KubeVirt's CRDs itself and refuses ones it did not make.
  const crd = await hc.controlPlane.kubectl([
    'get',
    'crd',
    'virtualmachineinstances.kubevirt.io',
    '-o',
    'jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by}',
  ]);
  if (crd.code === 0 && crd.stdout.trim() !== 'virt-operator')
    throw new Error(
      "KubeVirt's CRDs are already installed by something other than virt-operator, which will not take them over: start the ControlPlane with thirdPartyCRDs: false",
    );
  const images = await kubevirtImages();
  for (const [name, image] of Object.entries(images))
    await hc.pushImage(image, `kubevirt/${name}:${KUBEVIRT_VERSION}`);
  const prefix = `${hc.registry}/kubevirt`;
  const manifest = await renderOperatorManifest(prefix);
  const applied = await hc.controlPlane.kubectl(['apply', '--server-side', '-f', '-'], { input: manifest });
  if (applied.code !== 0) throw new Error(`kubectl apply kubevirt-operator.yaml: ${applied.stderr}`);
  const kv = {
    apiVersion: 'kubevirt.io/v1',
    kind: 'KubeVirt',
    metadata: { name: 'kubevirt', namespace: KUBEVIRT_NAMESPACE },
    spec: {
      imagePullPolicy: 'IfNotPresent',
      configuration: { developerConfiguration: { useEmulation: true } },
    },
  };
  const start = Date.now();
  await waitForCrd(hc, 'kubevirts.kubevirt.io', timeoutMs);
  const cr = await hc.controlPlane.kubectl(['apply', '-f', '-'], { input: JSON.stringify(kv) });
  if (cr.code !== 0) throw new Error(`kubectl apply KubeVirt: ${cr.stderr}`);
  for (;;) {
    const r = await hc.controlPlane.kubectl([
      'get',
      'kubevirt',
      'kubevirt',
      '-n',
      KUBEVIRT_NAMESPACE,
      '-o',
      'jsonpath={.status.conditions[?(@.type=="Available")].status}',
    ]);
    if (r.code === 0 && r.stdout.trim() === 'True') break;
    if (Date.now() - start > timeoutMs) {
      const pods = await hc.controlPlane.kubectl(['get', 'pods', '-A', '-o', 'wide']);
      const status = await hc.controlPlane.kubectl(['get', 'kubevirt', '-A', '-o', 'yaml']);
      throw new Error(`KubeVirt not Available after ${timeoutMs} ms\n${pods.stdout}\n${status.stdout}`);
    }
    await sleep(2000);
  }
  return { prefix, deployMs: Date.now() - start };
}

async function waitForCrd(hc: HomeCluster, name: string, timeoutMs: number): Promise<void> {
  const start = Date.now();
  while ((await hc.controlPlane.kubectl(['get', 'crd', name])).code !== 0) {
    if (Date.now() - start > timeoutMs) throw new Error(`CRD ${name} not served after ${timeoutMs} ms`);
    await sleep(500);
  }
}
