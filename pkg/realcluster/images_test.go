package realcluster

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestWriteImages builds images as the cluster does and reads them back as
// `ctr images import` would: the tarball names each image, its config has
// the entrypoint, user and this machine's platform, and its layer holds the
// files, links and directories asked for, plus the shared libraries of a
// dynamically linked program.
func TestWriteImages(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "hello.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	dynamic, err := os.Executable() // a Go test binary with cgo: dynamically linked
	if err != nil {
		t.Fatal(err)
	}
	libs, err := sharedLibraries(dynamic)
	if err != nil {
		t.Fatal(err)
	}
	images := []Image{
		{Ref: "tessera.local/plain:dev", Files: map[string]string{"/usr/bin/hello": script}, Links: map[string]string{"/bin/hi": "../usr/bin/hello"}, Dirs: []string{"/tmp"}, Entrypoint: []string{"/usr/bin/hello"}, User: "65532:65532"},
		{Ref: "tessera.local/dynamic:dev", Files: map[string]string{"/app": dynamic}, Entrypoint: []string{"/app"}},
	}
	path := filepath.Join(dir, "images.tar")
	if err := writeImages(path, images); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ref       string
		wantFiles []string
		wantUser  string
	}{
		{ref: "tessera.local/plain:dev", wantFiles: []string{"usr/bin/hello", "bin/hi", "tmp"}, wantUser: "65532:65532"},
		{ref: "tessera.local/dynamic:dev", wantFiles: append([]string{"app"}, trimSlash(libs)...)},
	}
	for _, tc := range tests {
		t.Run(tc.ref, func(t *testing.T) {
			tag, err := name.NewTag(tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			img, err := tarball.ImageFromPath(path, &tag)
			if err != nil {
				t.Fatalf("image %s not in the tarball: %v", tc.ref, err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != "linux" || cf.Architecture != runtime.GOARCH || cf.Config.User != tc.wantUser {
				t.Errorf("config: os %q arch %q user %q, want linux %s %q", cf.OS, cf.Architecture, cf.Config.User, runtime.GOARCH, tc.wantUser)
			}
			got := map[string]*tar.Header{}
			tr := tar.NewReader(mutate.Extract(img))
			for {
				hdr, err := tr.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got[hdr.Name] = hdr
			}
			for _, f := range tc.wantFiles {
				if got[f] == nil {
					t.Errorf("layer lacks %s; has %v", f, keysOf(got))
				}
			}
			if h := got["bin/hi"]; h != nil && (h.Typeflag != tar.TypeSymlink || h.Linkname != "../usr/bin/hello") {
				t.Errorf("bin/hi: type %c link %q, want a symlink to ../usr/bin/hello", h.Typeflag, h.Linkname)
			}
			if h := got["tmp"]; h != nil && h.Mode&0o7777 != 0o1777 {
				t.Errorf("tmp mode %o, want 1777", h.Mode)
			}
		})
	}
}

func TestSharedLibraries(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(text, []byte("not a program"), 0o644); err != nil {
		t.Fatal(err)
	}
	if libs, err := sharedLibraries(text); err != nil || len(libs) != 0 {
		t.Errorf("a text file: libs %v, err %v; want none", libs, err)
	}
	if _, err := sharedLibraries(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file: no error")
	}
	self, _ := os.Executable()
	libs, err := sharedLibraries(self)
	if err != nil {
		t.Fatal(err)
	}
	var libc bool
	for _, l := range libs {
		libc = libc || strings.Contains(filepath.Base(l), "libc.so")
	}
	if !libc {
		t.Errorf("a cgo test binary needs libc; got %v", libs)
	}
}

func trimSlash(paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, strings.TrimPrefix(p, "/"))
	}
	return out
}

func keysOf(m map[string]*tar.Header) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}
