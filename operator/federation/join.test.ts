import { stringify } from 'yaml';
import { createCertificateAuthority } from '../../dev/pki.js';
import { parseJoinKubeconfig } from './join.js';

let CA = '';
beforeAll(async () => {
  CA = (await createCertificateAuthority('join-test')).certPem;
});

function file(over: { server?: string; ns?: string; token?: string; ca?: string } = {}): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'm',
        cluster: {
          server: over.server ?? 'https://127.0.0.1:6443',
          'certificate-authority-data': over.ca ?? Buffer.from(CA).toString('base64'),
        },
      },
    ],
    users: [{ name: 'u', user: { token: over.token ?? 'abc.def-ghi' } }],
    contexts: [{ name: 'c', context: { cluster: 'm', user: 'u', namespace: over.ns ?? 'peer-alice' } }],
    'current-context': 'c',
  });
}

describe('parseJoinKubeconfig names what is wrong', () => {
  it('accepts a good file', () => {
    expect(parseJoinKubeconfig(file())).toMatchObject({ peer: 'alice', namespace: 'peer-alice' });
  });
  it.each([
    [() => 'not: [yaml', /not YAML|not a kubeconfig|kind must be Config/],
    [() => file({ ns: 'default' }), /namespace must be peer-<name>/],
    [() => file({ server: 'http://x' }), /server must be https/],
    [() => file({ token: '' }), /user.token is missing/],
    [() => file({ ca: 'bm90IGEgY2VydA==' }), /certificate-authority-data is not a base64 PEM certificate/],
  ])('%#', (text, message) => {
    expect(() => parseJoinKubeconfig(text())).toThrow(message);
  });
});
