import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateTypes, OUTPUT, readCrdSources, repoRoot, type CrdSource } from './generate-types.js';

const root = repoRoot();
const sources = readCrdSources(root);

describe('generate-types', () => {
  test('generated/ is up to date with crds/ (run `make gen` when this fails)', async () => {
    const want = await generateTypes(sources);
    expect(readFileSync(join(root, OUTPUT), 'utf8')).toBe(want);
  });

  test('fails when two schemas given the same type name drift apart', async () => {
    // Request.spec.vm and Assignment.spec.vm are both VmSpec; an extra field in one must be caught.
    const drifted: CrdSource[] = sources.map((s) =>
      s.file.endsWith('assignments.yaml')
        ? { ...s, text: s.text.replace('                    cloudInit:', '                    userData:') }
        : s,
    );
    await expect(generateTypes(drifted)).rejects.toThrow(/named VmSpec but their schemas differ/);
  });
});
