//go:build e2e

package gpumap

import (
	"context"
	"fmt"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestGPUMapInBrowser renders the sample picture in headless Chromium, as
// a person's browser would, and checks the screenshot's pixels: a whole
// GPU's cell is filled, a free one is not, a held MIG instance colours
// exactly its slices, a half-shared GPU is filled to half its height. It
// needs Debian's chromium; `make e2e` installs it.
func TestGPUMapInBrowser(t *testing.T) {
	browser := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		t.Fatal("no chromium on PATH: install Debian's chromium (make e2e-host does)")
	}
	nodes := sample()
	dir := t.TempDir()
	svgPath, pngPath := filepath.Join(dir, "gpus.svg"), filepath.Join(dir, "gpus.png")
	f, err := os.Create(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(f, "test", nodes); err != nil {
		t.Fatal(err)
	}
	f.Close()
	w, h := Size(nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--force-device-scale-factor=1", "--window-size="+strconv.Itoa(w)+","+strconv.Itoa(h),
		"--user-data-dir="+filepath.Join(dir, "profile"), "--screenshot="+pngPath, "file://"+svgPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	pf, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	img, err := png.Decode(pf)
	if err != nil {
		t.Fatal(err)
	}
	at := func(g int, fx, fy float64) color.Color {
		r := Cell(nodes, 0, g)
		return img.At(r.X+int(fx*float64(r.W)), r.Y+int(fy*float64(r.H)))
	}
	checks := []struct {
		what   string
		g      int
		fx, fy float64
		want   string
	}{
		{"whole GPU 0 filled", 0, 0.5, 0.5, ColorWhole},
		{"free GPU 1 empty", 1, 0.5, 0.5, ColorFree},
		{"shared GPU 2 filled at the bottom (500m)", 2, 0.5, 0.8, ColorShare},
		{"shared GPU 2 empty at the top", 2, 0.5, 0.2, ColorFree},
		{"MIG GPU 3: held 3g instance on slices 0-3", 3, 1.5 / 8, 0.5, ColorMIG},
		{"MIG GPU 3: slices 4-7 not held", 3, 5.5 / 8, 0.5, ColorFree},
	}
	for _, c := range checks {
		if got := hex(at(c.g, c.fx, c.fy)); !near(got, c.want) {
			t.Errorf("%s: pixel %s, want %s", c.what, got, c.want)
		}
	}
}

func hex(c color.Color) string {
	r, g, b, _ := c.RGBA()
	return fmt.Sprintf("#%02x%02x%02x", r>>8, g>>8, b>>8)
}

// near allows a little colour management between the SVG and the pixels.
func near(got, want string) bool {
	var a, b [3]int
	fmt.Sscanf(got, "#%02x%02x%02x", &a[0], &a[1], &a[2])
	fmt.Sscanf(want, "#%02x%02x%02x", &b[0], &b[1], &b[2])
	for i := range a {
		if d := a[i] - b[i]; d > 6 || d < -6 {
			return false
		}
	}
	return true
}
