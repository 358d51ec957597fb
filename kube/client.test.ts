import { parseWarnings } from './client.js';

describe('parseWarnings', () => {
  it('reads each Warning header line on its own, unquoting the text (commas and escaped quotes kept)', () => {
    const raw = [
      'Content-Type',
      'application/json',
      'Warning',
      '299 - "metadata.finalizers: \\"cleanup\\": prefer a domain-qualified finalizer name, say"',
      'warning',
      '299 kube-apiserver "v1 ComponentStatus is deprecated in v1.19+" "Mon, 01 Jan 2024 00:00:00 GMT"',
      'Warning',
      'not in the RFC format',
    ];
    expect(parseWarnings(raw)).toEqual([
      { code: 299, text: 'metadata.finalizers: "cleanup": prefer a domain-qualified finalizer name, say' },
      { code: 299, text: 'v1 ComponentStatus is deprecated in v1.19+' },
      { code: 0, text: 'not in the RFC format' },
    ]);
  });

  it('finds none in a response without Warning headers', () => {
    expect(parseWarnings(['Content-Type', 'application/json', 'Audit-Id', 'abc'])).toEqual([]);
  });
});
