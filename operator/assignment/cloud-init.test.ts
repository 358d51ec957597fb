import { parse } from 'yaml';
import type { VmSpec } from '../../generated/personalcloud.js';
import { CloudInitError, renderUserData } from './cloud-init.js';

const HOST = 'web-0.bob.home.example.net';
const K1 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJvYg bob@laptop';
const K2 = 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ bob@desk';
const K3 = 'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY carol';

function vm(cloudInit?: string, sshKeys?: string[]): VmSpec {
  return { image: 'img', ...(cloudInit !== undefined ? { cloudInit } : {}), ...(sshKeys ? { sshKeys } : {}) };
}

/** Renders and checks the document is a #cloud-config; returns it parsed. */
function rendered(spec: VmSpec, hostname = HOST): unknown {
  const out = renderUserData(spec, hostname);
  expect(out.startsWith('#cloud-config\n')).toBe(true);
  return parse(out);
}

function refusal(spec: VmSpec): CloudInitError {
  try {
    renderUserData(spec, HOST);
  } catch (err) {
    expect(err).toBeInstanceOf(CloudInitError);
    return err as CloudInitError;
  }
  throw new Error('renderUserData did not refuse');
}

describe('renderUserData: #cloud-config', () => {
  it.each<[string, VmSpec, unknown]>([
    ['no user data, no keys', vm(), { hostname: HOST }],
    ['blank user data', vm('  \n\t\n'), { hostname: HOST }],
    ['keys only', vm(undefined, [K1, K2]), { hostname: HOST, ssh_authorized_keys: [K1, K2] }],
    ['an empty cloud-config', vm('#cloud-config\n', [K1]), { hostname: HOST, ssh_authorized_keys: [K1] }],
    [
      'keys appended after the document’s own',
      vm(`#cloud-config\nssh_authorized_keys:\n  - ${K3}\n`, [K1]),
      { hostname: HOST, ssh_authorized_keys: [K3, K1] },
    ],
    [
      'a key already in the document is not repeated',
      vm(`#cloud-config\nssh_authorized_keys: ["${K1}"]\n`, [K1, K2]),
      { hostname: HOST, ssh_authorized_keys: [K1, K2] },
    ],
    [
      'the document’s keys kept when there are none to add',
      vm(`#cloud-config\nssh_authorized_keys: ["${K3}"]\n`),
      { hostname: HOST, ssh_authorized_keys: [K3] },
    ],
    [
      'the document’s own hostname wins over the default',
      vm('#cloud-config\nhostname: custom\n', [K1]),
      { hostname: 'custom', ssh_authorized_keys: [K1] },
    ],
    [
      'other modules are kept as they are',
      vm(
        '#cloud-config\npackages: [nginx, git]\nruncmd:\n  - [systemctl, enable, --now, nginx]\nssh_pwauth: false\n',
        [K1],
      ),
      {
        hostname: HOST,
        packages: ['nginx', 'git'],
        runcmd: [['systemctl', 'enable', '--now', 'nginx']],
        ssh_pwauth: false,
        ssh_authorized_keys: [K1],
      },
    ],
    [
      'leading whitespace before the header',
      vm('\n  #cloud-config\npackages: [git]\n', [K1]),
      { hostname: HOST, packages: ['git'], ssh_authorized_keys: [K1] },
    ],
    ['a header with no body', vm('#cloud-config'), { hostname: HOST }],
  ])('%s', (_, spec, want) => {
    expect(rendered(spec)).toEqual(want);
  });

  it('keeps a long key on one line (no folding)', () => {
    const long = `ssh-rsa AAAA${'B'.repeat(700)} bob@laptop`;
    const out = renderUserData(vm(undefined, [long]), HOST);
    expect(out.split('\n')).toContain(`  - ${long}`);
  });

  it('renders keys in order, packages as a block list', () => {
    const spec = vm('#cloud-config\npackages: [git]\n', [K1, K2]);
    expect(renderUserData(spec, HOST)).toBe(
      `#cloud-config\nhostname: ${HOST}\npackages:\n  - git\nssh_authorized_keys:\n  - ${K1}\n  - ${K2}\n`,
    );
  });

  it('does not modify the spec it was given', () => {
    const spec = vm(`#cloud-config\nssh_authorized_keys: ["${K3}"]\n`, [K1]);
    const before = structuredClone(spec);
    renderUserData(spec, HOST);
    expect(spec).toEqual(before);
  });
});

describe('renderUserData: other user data', () => {
  it.each([
    ['a shell script', '#!/bin/bash\necho hello > /tmp/hi\n'],
    ['a MIME archive', 'Content-Type: multipart/mixed; boundary="X"\nMIME-Version: 1.0\n\n--X--\n'],
    ['an include file', '#include\nhttps://example.com/user-data\n'],
  ])('%s without keys is passed through byte for byte', (_, data) => {
    expect(renderUserData(vm(data), HOST)).toBe(data);
    expect(renderUserData(vm(data, []), HOST)).toBe(data);
  });

  it.each([
    ['a shell script', '#!/bin/bash\necho hello\n'],
    ['a MIME archive', 'Content-Type: multipart/mixed; boundary="X"\n\n--X--\n'],
    ['YAML without the #cloud-config header', 'packages: [nginx]\n'],
  ])('%s with ssh keys is UnsupportedCloudInit', (_, data) => {
    const err = refusal(vm(data, [K1]));
    expect(err.reason).toBe('UnsupportedCloudInit');
    expect(err.message).toBe(
      'spec.vm.cloudInit is not a #cloud-config document, so spec.vm.sshKeys cannot be added to it',
    );
  });
});

describe('renderUserData: invalid #cloud-config', () => {
  it.each([
    [
      'unclosed flow sequence',
      '#cloud-config\npackages: [nginx\n',
      /^spec\.vm\.cloudInit is not valid YAML: /,
    ],
    ['bad indentation', '#cloud-config\na:\n  - b\n c: d\n', /^spec\.vm\.cloudInit is not valid YAML: /],
    [
      'a duplicate key',
      '#cloud-config\nhostname: a\nhostname: b\n',
      /^spec\.vm\.cloudInit is not valid YAML: /,
    ],
    ['two documents', '#cloud-config\na: 1\n---\nb: 2\n', /^spec\.vm\.cloudInit is not valid YAML: /],
    ['a list', '#cloud-config\n- a\n- b\n', /^spec\.vm\.cloudInit must be a #cloud-config mapping$/],
    ['a scalar', '#cloud-config\njust text\n', /^spec\.vm\.cloudInit must be a #cloud-config mapping$/],
  ])('%s is InvalidCloudInit, with or without keys', (_, data, message) => {
    for (const keys of [[K1], undefined]) {
      const err = refusal(vm(data, keys));
      expect(err.reason).toBe('InvalidCloudInit');
      expect(err.message).toMatch(message);
      // One line: it becomes a condition message and an Event.
      expect(err.message).not.toContain('\n');
    }
  });
});

describe('YAML 1.1, as cloud-init reads it', () => {
  it('keeps octal file permissions meaning what they meant (0644 stays mode 0o644)', () => {
    const given = '#cloud-config\nwrite_files:\n  - path: /etc/x\n    permissions: 0644\n    content: hi\n';
    const out = renderUserData({ image: 'i', cloudInit: given, sshKeys: ['ssh-ed25519 AAAA k'] }, 'h');
    const read = (doc: string) =>
      (parse(doc, { version: '1.1' }) as { write_files: { permissions: number }[] }).write_files;
    expect(read(out)).toEqual(read(given));
    expect(read(out)[0]?.permissions).toBe(0o644);
  });
});
