// Container images built on this machine, without a Docker engine: the pinned
// `oci-image` tool (go-containerregistry, tools/images) writes an image tarball from
// local files (and, for the operator image, a Debian root filesystem that setup built
// with mmdebstrap), reproducibly (fixed times and owners). `ctr images import` loads a
// tarball into a node's containerd, or `pushImage` puts it in the home cluster's
// registry. Tarballs are cached in .cache/images under a hash of everything that goes
// into them.
import { createHash, randomBytes } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { BIN_DIR } from './control-plane.js';
import { repoRoot } from './paths.js';
import { isAlive, runCommand } from './run-command.js';

export const IMAGE_DIR = join(repoRoot, '.cache', 'images');

export interface ImageSpec {
  /** Reference the image is imported as, e.g. pcloud.local/pause:1. */
  tag: string;
  /** Path in the image → file on this machine (copied with its mode). */
  files: Record<string, string>;
  /** Path in the image → symlink target. */
  links?: Record<string, string>;
  /** Empty directories (/tmp gets mode 1777). */
  dirs?: string[];
  /** Path in the image → a folder on this machine, copied recursively. */
  trees?: Record<string, string>;
  /** Path in the image (one of files) → file capabilities it carries, e.g. cap_net_bind_service. */
  caps?: Record<string, string[]>;
  /** A root filesystem tarball: the image's first layer. */
  base?: string;
  entrypoint?: string[];
  cmd?: string[];
  workdir?: string;
  /** e.g. 65532:65532 */
  user?: string;
}

export interface BuiltImage {
  tag: string;
  /** The image tarball (`docker save` layout). */
  path: string;
}

function tool(): string {
  const path = join(BIN_DIR, 'oci-image');
  if (!existsSync(path)) throw new Error(`${path} is missing: run 'make setup' first`);
  return path;
}

/** Builds (or finds in the cache) the image tarball of spec. */
export async function buildImage(spec: ImageSpec): Promise<BuiltImage> {
  sweepPartialImages();
  const path = cachedImagePath(spec.tag, specKey(spec));
  if (cacheHit(path)) return { tag: spec.tag, path };
  const built = await writeImage(spec, path);
  pruneOlderBuilds(spec.tag, path);
  return built;
}

/**
 * Earlier builds of tag's repository (KubeVirt's and the operator's are 100 MB and more
 * each) are not needed any more, but for those used lately: another worktree sharing
 * .cache/images may be about to push or import the one its sources make.
 */
function pruneOlderBuilds(tag: string, path: string): void {
  const repo = tag.slice(0, tag.lastIndexOf(':')).replace(/[^a-zA-Z0-9.-]+/g, '_');
  for (const f of readdirSync(IMAGE_DIR)) {
    const p = join(IMAGE_DIR, f);
    if (!f.startsWith(`${repo}_`) || !f.endsWith('.tar') || p === path) continue;
    const used = statSync(p, { throwIfNoEntry: false })?.mtimeMs ?? 0;
    if (Date.now() - used > KEEP_RECENT_MS) rmSync(p, { force: true });
  }
}

/** Whether path is built; a hit is touched, so a concurrent eviction keeps it (see KEEP_RECENT_MS). */
function cacheHit(path: string): boolean {
  if (!existsSync(path)) return false;
  const now = new Date();
  utimesSync(path, now, now);
  return true;
}

/** Everything that goes into spec's image, hashed: the cache key. */
function specKey(spec: ImageSpec): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify(spec));
  hash.update(readFileSync(tool()));
  // The mode too: oci-image copies it (an executable bit fixed later must rebuild the image).
  for (const src of Object.values(spec.files))
    hash.update(`${statSync(src).mode}\0`).update(readFileSync(src));
  for (const dir of Object.values(spec.trees ?? {})) hashTree(hash, dir);
  if (spec.base) hash.update(readFileSync(spec.base));
  return hash.digest('hex').slice(0, 16);
}

function cachedImagePath(tag: string, key: string): string {
  mkdirSync(IMAGE_DIR, { recursive: true });
  return join(IMAGE_DIR, `${tag.replace(/[^a-zA-Z0-9.-]+/g, '_')}-${key}.tar`);
}

/**
 * Several processes build into .cache/images at once (other worktrees share it): each
 * writes under a name of its own (oci-image itself writes `<-o>.tmp` and renames it to
 * `<-o>`), then renames the finished tarball into place. A rename is atomic, so a reader
 * sees either no file or a whole one; two builds of the same key write the same bytes.
 */
const PART = '.part-'; // sweepPartialImages matches it

async function writeImage(spec: ImageSpec, path: string): Promise<BuiltImage> {
  const part = `${path}${PART}${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await runOciImage(spec, part);
    renameSync(part, path);
  } finally {
    rmSync(part, { force: true });
    rmSync(`${part}.tmp`, { force: true });
  }
  return { tag: spec.tag, path };
}

/** Removes the partial tarballs of builds whose process is gone. */
function sweepPartialImages(): void {
  if (!existsSync(IMAGE_DIR)) return;
  for (const f of readdirSync(IMAGE_DIR)) {
    const m = /\.part-(\d+)-/.exec(f);
    if (m && !isAlive(Number(m[1]))) rmSync(join(IMAGE_DIR, f), { force: true });
  }
}

async function runOciImage(spec: ImageSpec, path: string): Promise<void> {
  const args = ['-o', path, '-tag', spec.tag];
  for (const [dest, src] of Object.entries(spec.files)) args.push('-file', `${dest}=${src}`);
  for (const [dest, target] of Object.entries(spec.links ?? {})) args.push('-link', `${dest}=${target}`);
  for (const d of spec.dirs ?? []) args.push('-dir', d);
  for (const [dest, src] of Object.entries(spec.trees ?? {})) args.push('-tree', `${dest}=${src}`);
  for (const [dest, caps] of Object.entries(spec.caps ?? {})) args.push('-cap', `${dest}=${caps.join(',')}`);
  if (spec.base) args.push('-base', spec.base);
  if (spec.workdir) args.push('-workdir', spec.workdir);
  if (spec.user) args.push('-user', spec.user);
  if (spec.entrypoint) args.push('-entrypoint', JSON.stringify(spec.entrypoint));
  if (spec.cmd) args.push('-cmd', JSON.stringify(spec.cmd));
  const r = await runCommand(tool(), args);
  if (r.code !== 0) throw new Error(`oci-image ${args.join(' ')} failed: ${r.stderr}`);
}

/** Names, modes and contents of every file under dir but those skip matches, in order. */
function hashTree(hash: ReturnType<typeof createHash>, dir: string, skip?: RegExp): void {
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (skip?.test(e.name)) continue;
      hash.update(`${relative(dir, p)}\0${statSync(p, { throwIfNoEntry: false })?.mode ?? 0}\0`);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) hash.update(readFileSync(p));
    }
  };
  walk(dir);
}

/** Pushes an image tarball to a plain-HTTP registry as ref (host:port/repo:tag); returns its digest. */
export async function pushImage(image: BuiltImage, ref: string): Promise<string> {
  const r = await runCommand(tool(), ['push', '-i', image.path, '-ref', ref]);
  if (r.code !== 0) throw new Error(`oci-image push ${image.path} ${ref} failed: ${r.stderr}`);
  return r.stdout.trim();
}

/** The pod sandbox image: the static pause binary built from tools/pause. */
export const PAUSE_IMAGE = 'pcloud.local/pause:1';
export function pauseImage(): Promise<BuiltImage> {
  return buildImage({
    tag: PAUSE_IMAGE,
    files: { '/pause': join(BIN_DIR, 'pause') },
    entrypoint: ['/pause'],
  });
}

/** Debian's busybox-static as a tiny image (sh, wget, httpd, ip, ...). */
export const BUSYBOX_IMAGE = 'pcloud.local/busybox:1.35.0';
const BUSYBOX = '/bin/busybox';
export function busyboxImage(): Promise<BuiltImage> {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: run 'make setup' (busybox-static)`);
  const links: Record<string, string> = {};
  for (const applet of ['sh', 'cat', 'echo', 'hostname', 'ip', 'sleep', 'wget', 'httpd', 'ls', 'env'])
    links[`/bin/${applet}`] = 'busybox';
  return buildImage({
    tag: BUSYBOX_IMAGE,
    files: { '/bin/busybox': BUSYBOX },
    links,
    dirs: ['/tmp', '/etc', '/proc', '/sys', '/dev'],
    entrypoint: ['/bin/sh'],
  });
}

/** Where setup put the operator image's base (tools/operator-image/image.env). */
const BASE_DIR = join(IMAGE_DIR, 'base');
/** The runtime floors the image is compiled from (tsconfig.image.json's include). */
function runtimeFloors(): string[] {
  const config = JSON.parse(readFileSync(join(repoRoot, 'tsconfig.image.json'), 'utf8')) as {
    include: string[];
  };
  return config.include;
}
const BUILD_PREFIX = 'pcloud-img-';
/** Older operator images used within this long are kept (a cache hit touches its file). */
const KEEP_RECENT_MS = 6 * 3600_000;

/** Removes build folders of image builds whose process is gone. */
function sweepImageBuilds(): void {
  for (const e of readdirSync(tmpdir())) {
    const m = new RegExp(`^${BUILD_PREFIX}(\\d+)-`).exec(e);
    if (!m) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch {
      rmSync(join(tmpdir(), e), { recursive: true, force: true });
    }
  }
}

/** The sources and build inputs of the image's /app, hashed to know when to rebuild. */
function appInputsKey(): string {
  const hash = createHash('sha256');
  for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.image.json'])
    hash.update(readFileSync(join(repoRoot, f)));
  // Tests are not compiled into the image (tsconfig.image.json excludes them).
  for (const d of [...runtimeFloors(), 'crds']) hashTree(hash, join(repoRoot, d), /\.test\.ts$/);
  return hash.digest('hex').slice(0, 16);
}

/**
 * The operator image the chart runs, as the repository's Dockerfile describes it: a
 * Debian bookworm root filesystem with iproute2, nftables and ca-certificates
 * (mmdebstrap), Node's own binary at /usr/local/bin/node, and /app with dist/ compiled
 * from the runtime floors alone, production node_modules, package.json and crds/;
 * user 65532, entrypoint `node --enable-source-maps dist/cli/pcloud.js`, command
 * `operator`. /app is assembled in a temporary folder only when its inputs changed.
 */
export async function operatorImage(tag: string): Promise<BuiltImage> {
  // What a killed build left, whether or not this call builds.
  sweepImageBuilds();
  sweepPartialImages();
  const rootfs = join(BASE_DIR, 'rootfs.tar');
  const node = join(BASE_DIR, 'node');
  for (const p of [rootfs, node])
    if (!existsSync(p)) throw new Error(`${p} is missing: run 'make setup' first`);
  const image = (app: string): ImageSpec => ({
    tag,
    base: rootfs,
    files: { '/usr/local/bin/node': node },
    trees: { '/app': app },
    dirs: ['/tmp'],
    workdir: '/app',
    user: '65532:65532',
    entrypoint: ['node', '--enable-source-maps', 'dist/cli/pcloud.js'],
    cmd: ['operator'],
  });
  // The key is the inputs of /app (not /app itself, assembled only on a miss), the base
  // files, the tool and the rest of the spec.
  const hash = createHash('sha256');
  hash.update(appInputsKey());
  hash.update(JSON.stringify(image('')));
  hash.update(readFileSync(tool()));
  hash.update(readFileSync(rootfs));
  hash.update(readFileSync(node));
  const path = cachedImagePath(tag, hash.digest('hex').slice(0, 16));
  if (cacheHit(path)) return { tag, path };

  const build = mkdtempSync(join(tmpdir(), `${BUILD_PREFIX}${process.pid}-`));
  try {
    const app = join(build, 'app');
    const tsc = await runCommand(
      join(repoRoot, 'node_modules', '.bin', 'tsc'),
      ['-p', join(repoRoot, 'tsconfig.image.json'), '--outDir', join(app, 'dist')],
      { cwd: repoRoot },
    );
    if (tsc.code !== 0) throw new Error(`tsc -p tsconfig.image.json failed: ${tsc.stdout}${tsc.stderr}`);
    for (const f of ['package.json', 'package-lock.json']) cpSync(join(repoRoot, f), join(app, f));
    // Production node_modules: a copy of the installed tree, pruned (as the Dockerfile does).
    cpSync(join(repoRoot, 'node_modules'), join(app, 'node_modules'), {
      recursive: true,
      verbatimSymlinks: true,
    });
    rmSync(join(app, 'node_modules', '.pcloud-stamp'), { force: true });
    const prune = await runCommand(
      'npm',
      ['prune', '--omit=dev', '--no-audit', '--no-fund', '--offline', '--loglevel=error'],
      { cwd: app },
    );
    if (prune.code !== 0) throw new Error(`npm prune --omit=dev failed: ${prune.stderr}`);
    rmSync(join(app, 'package-lock.json'));
    rmSync(join(app, 'node_modules', '.package-lock.json'), { force: true });
    mkdirSync(join(app, 'crds'));
    for (const f of readdirSync(join(repoRoot, 'crds')).filter((f) => f.endsWith('.yaml')))
      cpSync(join(repoRoot, 'crds', f), join(app, 'crds', f));
    const built = await writeImage(image(app), path);
    pruneOlderBuilds(tag, path);
    return built;
  } finally {
    rmSync(build, { recursive: true, force: true });
  }
}
