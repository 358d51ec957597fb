// oci-image builds a single-layer linux/amd64 image from files of this machine and
// writes it as an image tarball (`docker save` layout) that `ctr images import` loads.
// The output is reproducible: every file and the config carry a fixed time, owner
// root, and entries are written in sorted order, so the same inputs give the same
// image digest.
//
//	oci-image -o out.tar -tag pcloud.local/pause:1 \
//	  -file /pause=/path/on/host[:0755] -link /bin/sh=busybox -dir /tmp \
//	  -entrypoint '["/pause"]' [-cmd '["..."]'] [-env K=V]
package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
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
	var files, links, dirs, env list
	out := flag.String("o", "", "output tarball")
	tag := flag.String("tag", "", "image reference recorded in the tarball")
	entrypoint := flag.String("entrypoint", "", "JSON array")
	cmd := flag.String("cmd", "", "JSON array")
	workdir := flag.String("workdir", "/", "working directory")
	flag.Var(&files, "file", "DEST=SRC[:MODE] (octal mode; default the source's)")
	flag.Var(&links, "link", "DEST=TARGET symbolic link")
	flag.Var(&dirs, "dir", "an empty directory (mode 1777 for /tmp, else 0755)")
	flag.Var(&env, "env", "K=V")
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

	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "oci-image"}})
	fail(err)
	cf, err := img.ConfigFile()
	fail(err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.WorkingDir = *workdir
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

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "oci-image:", err)
		os.Exit(1)
	}
}
