/**
 * Image tarballs built at the same time into the shared .cache/images (other worktrees
 * build theirs there too): every build writes under a name of its own and renames the
 * whole tarball into place, so concurrent builds of one image all succeed, leave one
 * whole tarball and no partial files.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { buildImage, IMAGE_DIR } from './images.js';
import { runCommand } from './run-command.js';

const dir = mkdtempSync(join(tmpdir(), 'pcloud-images-test-'));
const TAG = 'pcloud.local/concurrent-build-test:1';

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  // This test's tarballs (each run's payload differs), whether or not the builds succeeded.
  for (const f of readdirSync(IMAGE_DIR))
    if (f.startsWith('pcloud.local_concurrent-build-test_1-')) rmSync(join(IMAGE_DIR, f), { force: true });
});

const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');

it('builds one image four times at once: one whole tarball, the same bytes, no partial files', async () => {
  // A new payload each run, so the cache misses and all four really write. 16 MB so the
  // writes overlap (one shared temporary name made them clobber each other's file).
  const payload = join(dir, 'payload');
  writeFileSync(payload, randomBytes(16 << 20));
  const spec = {
    tag: TAG,
    files: { '/payload': payload },
    entrypoint: ['/payload'],
  };
  const results = await Promise.all([1, 2, 3, 4].map(() => buildImage(spec)));
  expect(new Set(results.map((r) => r.path)).size).toBe(1);
  const path = results[0]!.path;

  // A valid docker-save tarball whose layer holds the payload.
  const list = await runCommand('tar', ['-tf', path]);
  expect(list.code).toBe(0);
  expect(list.stdout.split('\n')).toContain('manifest.json');
  const manifest = JSON.parse((await runCommand('tar', ['-xOf', path, 'manifest.json'])).stdout) as {
    RepoTags: string[];
    Layers: string[];
  }[];
  expect(manifest[0]!.RepoTags).toEqual([spec.tag]);
  const layer = await runCommand('sh', ['-c', `tar -xOf '${path}' '${manifest[0]!.Layers[0]}' | tar -tzf -`]);
  expect(layer.stdout.split('\n')).toContain('payload');

  // Nothing partial left behind by this process.
  const leftovers = readdirSync(IMAGE_DIR).filter(
    (f) => f.startsWith(basename(path)) && f !== basename(path),
  );
  expect(leftovers).toEqual([]);

  // A fifth, sequential build is a cache hit on the same bytes (reproducible output).
  const before = sha(path);
  expect((await buildImage(spec)).path).toBe(path);
  expect(sha(path)).toBe(before);
});
