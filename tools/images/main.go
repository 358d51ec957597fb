// oci-image builds a linux/amd64 image from files of this machine and writes it as an
// image tarball (`docker save` layout) that `ctr images import` loads, or pushes such a
// tarball to a registry. The output is reproducible: every file and the config carry a
// fixed time, owner root, and entries are written in sorted order, so the same inputs
// give the same image digest. A root filesystem tarball (-base, e.g. mmdebstrap's) becomes
// the first layer, normalised the same way (fixed times, no device nodes).
//
//	oci-image -o out.tar -tag pcloud.local/pause:1 \
//	  [-base rootfs.tar] -file /pause=/path/on/host[:0755] -tree /app=dir -link /bin/sh=busybox \
//	  -dir /tmp -entrypoint '["/pause"]' [-cmd '["..."]'] [-env K=V] [-user 65532:65532]
//	oci-image push -i out.tar -ref 192.168.214.254:5000/pcloud/pause:1   (plain HTTP)
package main

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

type entry struct {
	hdr  tar.Header
	body []byte
}

var epoch = time.Unix(0, 0).UTC()

func main() {
	if len(os.Args) > 1 && os.Args[1] == "push" {
		push(os.Args[2:])
		return
	}
	var files, links, dirs, env, trees, caps list
	base := flag.String("base", "", "root filesystem tarball, the first layer (normalised)")
	user := flag.String("user", "", "the user the entrypoint runs as, e.g. 65532:65532")
	out := flag.String("o", "", "output tarball")
	tag := flag.String("tag", "", "image reference recorded in the tarball")
	entrypoint := flag.String("entrypoint", "", "JSON array")
	cmd := flag.String("cmd", "", "JSON array")
	workdir := flag.String("workdir", "/", "working directory")
	flag.Var(&files, "file", "DEST=SRC[:MODE] (octal mode; default the source's)")
	flag.Var(&links, "link", "DEST=TARGET symbolic link")
	flag.Var(&dirs, "dir", "an empty directory (mode 1777 for /tmp, else 0755)")
	flag.Var(&env, "env", "K=V")
	flag.Var(&trees, "tree", "DEST=SRCDIR: a directory of this machine, recursively (files keep their modes)")
	flag.Var(&caps, "cap", "DEST=CAP[,CAP...]: file capabilities of a -file (permitted and effective), e.g. cap_net_bind_service")
	flag.Parse()
	if *out == "" || *tag == "" {
		fail(fmt.Errorf("-o and -tag are required"))
	}

	entries := map[string]entry{}
	addDirs := func(p string) {
		for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
			name := strings.TrimPrefix(d, "/") + "/"
			if _, ok := entries[name]; !ok {
				entries[name] = entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
			}
		}
	}
	for _, f := range files {
		dest, src, ok := strings.Cut(f, "=")
		if !ok {
			fail(fmt.Errorf("-file %q: want DEST=SRC[:MODE]", f))
		}
		var mode int64 = -1
		if i := strings.LastIndex(src, ":"); i >= 0 {
			m, err := strconv.ParseInt(src[i+1:], 8, 64)
			fail(err)
			mode, src = m, src[:i]
		}
		body, err := os.ReadFile(src)
		fail(err)
		if mode < 0 {
			st, err := os.Stat(src)
			fail(err)
			mode = int64(st.Mode().Perm())
		}
		addDirs(dest)
		name := strings.TrimPrefix(dest, "/")
		entries[name] = entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, body: body}
	}
	for _, l := range links {
		dest, target, ok := strings.Cut(l, "=")
		if !ok {
			fail(fmt.Errorf("-link %q: want DEST=TARGET", l))
		}
		addDirs(dest)
		name := strings.TrimPrefix(dest, "/")
		entries[name] = entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
	}
	for _, d := range dirs {
		addDirs(d + "/x")
		name := strings.TrimPrefix(d, "/") + "/"
		var mode int64 = 0o755
		if d == "/tmp" {
			mode = 0o1777
		}
		entries[name] = entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}}
	}

	for _, t := range trees {
		dest, src, ok := strings.Cut(t, "=")
		if !ok {
			fail(fmt.Errorf("-tree %q: want DEST=SRCDIR", t))
		}
		addDirs(dest + "/x")
		fail(filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(src, p)
			if err != nil {
				return err
			}
			name := strings.TrimPrefix(path.Join(dest, filepath.ToSlash(rel)), "/")
			info, err := d.Info()
			if err != nil {
				return err
			}
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				target, err := os.Readlink(p)
				if err != nil {
					return err
				}
				entries[name] = entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
			case d.IsDir():
				entries[name+"/"] = entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: int64(info.Mode().Perm())}}
			case d.Type().IsRegular():
				body, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				entries[name] = entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(info.Mode().Perm()), Size: int64(len(body))}, body: body}
			default:
				return fmt.Errorf("%s: not a file, directory or symbolic link", p)
			}
			return nil
		}))
	}

	for _, c := range caps {
		dest, names, ok := strings.Cut(c, "=")
		e, found := entries[strings.TrimPrefix(dest, "/")]
		if !ok || !found || e.hdr.Typeflag != tar.TypeReg {
			fail(fmt.Errorf("-cap %q: want DEST=CAP[,CAP...] for a -file DEST", c))
		}
		xattr, err := fileCaps(strings.Split(names, ","))
		fail(err)
		e.hdr.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": xattr}
		entries[strings.TrimPrefix(dest, "/")] = e
	}

	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := entries[n]
		e.hdr.ModTime, e.hdr.Format = epoch, tar.FormatPAX
		fail(tw.WriteHeader(&e.hdr))
		if e.body != nil {
			_, err := tw.Write(e.body)
			fail(err)
		}
	}
	fail(tw.Close())
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	fail(err)

	img := empty.Image
	if *base != "" {
		baseBytes, err := normaliseRootfs(*base)
		fail(err)
		baseLayer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(baseBytes)), nil
		})
		fail(err)
		img, err = mutate.Append(img, mutate.Addendum{Layer: baseLayer, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "oci-image -base " + path.Base(*base)}})
		fail(err)
	}
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "oci-image"}})
	fail(err)
	cf, err := img.ConfigFile()
	fail(err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.WorkingDir = *workdir
	cf.Config.User = *user
	cf.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	if *entrypoint != "" {
		fail(json.Unmarshal([]byte(*entrypoint), &cf.Config.Entrypoint))
	}
	if *cmd != "" {
		fail(json.Unmarshal([]byte(*cmd), &cf.Config.Cmd))
	}
	img, err = mutate.ConfigFile(img, cf)
	fail(err)

	ref, err := name.NewTag(*tag)
	fail(err)
	tmp := *out + ".tmp"
	fail(tarball.WriteToFile(tmp, ref, img))
	fail(os.Rename(tmp, *out))
	digest, err := img.Digest()
	fail(err)
	fmt.Println(digest.String())
}

// normaliseRootfs rewrites a root filesystem tarball as a layer: names without "./",
// fixed times, owners by number only, no device nodes or FIFOs (the runtime provides
// /dev), entries in the input's order (mmdebstrap writes them sorted).
func normaliseRootfs(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		if name == "" {
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			continue
		}
		out := tar.Header{
			Typeflag: hdr.Typeflag, Name: name, Linkname: hdr.Linkname, Size: hdr.Size,
			Mode: hdr.Mode, Uid: hdr.Uid, Gid: hdr.Gid, ModTime: epoch, Format: tar.FormatPAX,
		}
		if hdr.Typeflag == tar.TypeLink {
			out.Linkname = strings.TrimPrefix(hdr.Linkname, "./")
		}
		if err := tw.WriteHeader(&out); err != nil {
			return nil, err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, tr); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// push copies an image tarball to a registry over plain HTTP (the home cluster's own).
func push(args []string) {
	fs := flag.NewFlagSet("push", flag.ExitOnError)
	in := fs.String("i", "", "image tarball written by oci-image")
	ref := fs.String("ref", "", "where to push, e.g. 192.168.214.254:5000/pcloud/pause:1")
	fail(fs.Parse(args))
	if *in == "" || *ref == "" {
		fail(fmt.Errorf("push: -i and -ref are required"))
	}
	img, err := tarball.ImageFromPath(*in, nil)
	fail(err)
	r, err := name.ParseReference(*ref, name.Insecure)
	fail(err)
	fail(remote.Write(r, img))
	digest, err := img.Digest()
	fail(err)
	fmt.Println(digest.String())
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "oci-image:", err)
		os.Exit(1)
	}
}

// capBits are the capabilities -cap knows (linux/capability.h).
var capBits = map[string]uint{"cap_net_bind_service": 10, "cap_net_admin": 12, "cap_net_raw": 13, "cap_sys_admin": 21}

// fileCaps encodes capabilities as the security.capability extended attribute (struct
// vfs_cap_data, revision 2), permitted and effective, as `setcap CAPS+ep` writes it.
func fileCaps(names []string) (string, error) {
	var permitted uint32
	for _, n := range names {
		bit, ok := capBits[n]
		if !ok {
			return "", fmt.Errorf("unknown capability %q", n)
		}
		permitted |= 1 << bit
	}
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000000|0x1) // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
	binary.LittleEndian.PutUint32(b[4:], permitted)
	return string(b), nil
}
