package realcluster

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Image is a container image made of files of this machine: nothing can be
// pulled here, so the cluster's images (the pod sandbox's pause, a workload
// image, Tessera's own) are built from local binaries and imported into
// every node's containerd.
type Image struct {
	// Ref names the image, e.g. tessera.local/tessera-scheduler:dev. Pods
	// use it with imagePullPolicy IfNotPresent or Never.
	Ref string
	// Files are copied into the image: image path → host path. A
	// dynamically linked program brings the shared libraries it loads.
	Files map[string]string
	// Links are symbolic links: image path → target.
	Links map[string]string
	// Dirs are empty directories to create (e.g. /tmp).
	Dirs []string
	// Entrypoint and User are the image's defaults.
	Entrypoint []string
	User       string
}

// Images the cluster itself needs.
const (
	// PauseImage is every pod sandbox's image (containerd's sandbox_image).
	PauseImage = "tessera.local/pause:dev"
	// BusyboxImage is a small workload image: Debian's static busybox with
	// sh, echo, sleep, cat, env, ls, true and false.
	BusyboxImage = "tessera.local/busybox:dev"
)

// PauseImageFrom is the pause image made of a tessera-pause binary.
func PauseImageFrom(pauseBinary string) Image {
	return Image{Ref: PauseImage, Files: map[string]string{"/pause": pauseBinary}, Entrypoint: []string{"/pause"}, User: "65535"}
}

// BusyboxImageFrom is the busybox image made of a static busybox binary
// (Debian's busybox-static installs /bin/busybox).
func BusyboxImageFrom(busybox string) Image {
	img := Image{Ref: BusyboxImage, Files: map[string]string{"/bin/busybox": busybox}, Links: map[string]string{}, Dirs: []string{"/tmp"}, Entrypoint: []string{"/bin/sh"}}
	for _, applet := range []string{"sh", "echo", "sleep", "cat", "env", "ls", "true", "false", "wc", "grep"} {
		img.Links["/bin/"+applet] = "busybox"
	}
	return img
}

// build makes the image: one layer with the files, and a config with the
// entrypoint, user and this machine's platform.
func (img Image) build() (v1.Image, error) {
	files := map[string]string{}
	for dst, src := range img.Files {
		files[dst] = src
		libs, err := sharedLibraries(src)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Ref, err)
		}
		for _, lib := range libs {
			files[lib] = lib
		}
	}
	layerTar, err := layerOf(files, img.Links, img.Dirs)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", img.Ref, err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		return nil, err
	}
	image, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := image.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Entrypoint = img.Entrypoint
	cf.Config.User = img.User
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	return mutate.ConfigFile(image, cf)
}

// writeImages writes images as one docker-archive tarball, the format
// `ctr images import` reads.
func writeImages(path string, images []Image) error {
	refs := map[name.Tag]v1.Image{}
	for _, img := range images {
		tag, err := name.NewTag(img.Ref)
		if err != nil {
			return fmt.Errorf("image name %q: %w", img.Ref, err)
		}
		built, err := img.build()
		if err != nil {
			return err
		}
		refs[tag] = built
	}
	return tarball.MultiWriteToFile(path, refs)
}

// layerOf writes a layer's tar stream: directories first, then files and
// links, in a stable order so that the same inputs make the same digest.
func layerOf(files, links map[string]string, dirs []string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	parents := map[string]bool{}
	addParents := func(p string) {
		for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
			parents[d] = true
		}
	}
	for p := range files {
		addParents(p)
	}
	for p := range links {
		addParents(p)
	}
	for _, d := range dirs {
		parents[path.Clean(d)] = true
		addParents(d)
	}
	sortedDirs := make([]string, 0, len(parents))
	for d := range parents {
		sortedDirs = append(sortedDirs, d)
	}
	sort.Strings(sortedDirs)
	for _, d := range sortedDirs {
		mode := int64(0o755)
		if d == "/tmp" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: mode}); err != nil {
			return nil, err
		}
	}
	for _, dst := range sortedKeys(files) {
		src := files[dst]
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		st, err := os.Stat(src)
		if err != nil {
			return nil, err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(dst, "/"), Mode: int64(st.Mode().Perm()), Size: int64(len(data))}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	for _, dst := range sortedKeys(links) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: strings.TrimPrefix(dst, "/"), Linkname: links[dst], Mode: 0o777}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var lddLine = regexp.MustCompile(`(?:=>\s*)?(/\S+)\s+\(0x`)

// sharedLibraries lists the shared libraries (and the dynamic loader) that
// a dynamically linked program needs, by their paths on this machine; a
// static program, or a file that is no program, needs none.
func sharedLibraries(program string) ([]string, error) {
	magic := make([]byte, len(elf.ELFMAG))
	raw, err := os.Open(program)
	if err != nil {
		return nil, err
	}
	_, err = io.ReadFull(raw, magic)
	raw.Close()
	if err != nil || string(magic) != elf.ELFMAG {
		return nil, nil
	}
	f, err := elf.Open(program)
	if err != nil {
		return nil, err
	}
	dynamic := false
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			dynamic = true
		}
	}
	f.Close()
	if !dynamic {
		return nil, nil
	}
	out, err := exec.Command("ldd", program).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", program, err)
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		if m := lddLine.FindStringSubmatch(line); m != nil {
			libs = append(libs, filepath.Clean(m[1]))
		}
	}
	return libs, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
