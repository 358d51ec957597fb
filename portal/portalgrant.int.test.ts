// The portal's API against a real kube-apiserver: a PortalGrant or a login key that is not
// well formed is refused with a message naming the field, and a grant cannot be changed
// once made (delete it and make another).
import { ControlPlane } from '../dev/control-plane.js';
import { KubeClient, type KubeObject } from '../kube/client.js';
import { Resources } from '../kube/kinds.js';
import { generateSigningKey } from './assertion.js';

let cp: ControlPlane;
let client: KubeClient;
const NS = 'tenant-bob';

const grant = (name: string, spec: Record<string, unknown> = {}): KubeObject => ({
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'PortalGrant',
  metadata: { name, namespace: NS },
  spec: {
    vm: 'web-0',
    protocol: 'TCP',
    port: 22,
    clientAddress: '203.0.113.7',
    expiresAt: '2026-12-02T10:00:00Z',
    user: 'ann@bob',
    ...spec,
  },
});

const request = (name: string, loginKey: string): KubeObject => ({
  apiVersion: 'personalcloud.io/v1alpha1',
  kind: 'Request',
  metadata: { name, namespace: NS },
  spec: { peer: 'bob', units: 1, loginKey, vm: { image: 'quay.io/containerdisks/fedora:40' } },
});

async function refusal(o: KubeObject): Promise<string> {
  try {
    await client.create(o);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error(`${o.metadata?.name} was accepted`);
}

beforeAll(async () => {
  cp = await ControlPlane.start({ name: 'portal-api', thirdPartyCRDs: false });
  client = await KubeClient.fromKubeConfig(cp.kubeConfig());
  await client.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }, 'test');
});
afterAll(async () => {
  client?.close();
  await cp?.stop();
});

test('a well-formed grant and login key are accepted', async () => {
  await client.create(grant('ok'));
  await client.create(request('ok', generateSigningKey().publicKey));
});

test.each([
  [
    'an address that is not IPv4',
    { clientAddress: '2001:db8::1' },
    'spec.clientAddress',
    'must be an IPv4 address',
  ],
  ['a malformed address', { clientAddress: '203.0.113' }, 'spec.clientAddress', 'must be an IPv4 address'],
  ['HTTP', { protocol: 'HTTP' }, 'spec.protocol', 'Unsupported value: "HTTP"'],
  ['port 0', { port: 0 }, 'spec.port', 'should be greater than or equal to 1'],
  ['a VM name that is no DNS label', { vm: 'Web_0' }, 'spec.vm', 'should match'],
  ['an expiry that is no time', { expiresAt: 'tomorrow' }, 'spec.expiresAt', 'must be of type date-time'],
])('refuses %s (%j), naming the field', async (_what, spec, field, why) => {
  const message = await refusal(grant(`bad-${field.replace(/\W/g, '')}-${Object.keys(spec)[0]}`, spec));
  expect(message).toContain(field);
  expect(message).toContain(why);
});

test('refuses a login key that is not 32 bytes of base64url', async () => {
  for (const key of ['not-a-key', `${'A'.repeat(42)}B`, `${'A'.repeat(42)}E=`]) {
    const message = await refusal(request(`k${key.length}${key.slice(-1) === '=' ? 'p' : ''}`, key));
    expect(message).toContain('spec.loginKey');
  }
});

test('a grant is immutable', async () => {
  const g = await client.get(Resources.PortalGrant, 'ok', NS);
  let message = '';
  try {
    await client.update({
      ...g!,
      spec: { ...(g!.spec as object), clientAddress: '198.51.100.1' },
    });
  } catch (err) {
    message = (err as Error).message;
  }
  expect(message).toContain('a grant is immutable; delete it and create another');
});
